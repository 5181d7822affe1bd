"""Tests of geocsp.data.geoworld.classifier: the linear image head."""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from geocsp.data.geoworld import generate_world
from geocsp.data.geoworld.classifier import ClassifierSettings, train_linear_classifier

from .gwutils import TINY, world_arrays


def test_classifier_probs_do_not_depend_on_the_thread_count() -> None:
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threadpool_limits(limits=2):
            two = world_arrays(generate_world(TINY, 5))
        torch.set_num_threads(1)
        with threadpool_limits(limits=1):
            one = world_arrays(generate_world(TINY, 5))
    finally:
        torch.set_num_threads(old)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)


def test_full_batch_head_reaches_the_penalised_optimum() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = (rng.standard_normal((4, 5))[y] + rng.standard_normal((120, 5))).astype(np.float32)
    s = ClassifierSettings(lbfgs_iters=500, weight_decay=0.05)
    w, b = train_linear_classifier(x, np.arange(120), y, 4, s, seed=0)
    w, b = w.double().numpy(), b.double().numpy()
    # independent float64 gradient of mean CE + λ/2 ||W||² (features centred, bias unpenalised)
    xc = x.astype(np.float64) - x.mean(0)
    bc = b + x.mean(0).astype(np.float64) @ w
    z = xc @ w + bc
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = p - np.eye(4)[y]
    assert np.abs(xc.T @ g / 120 + 0.05 * w).max() < 1e-4 and np.abs(g.mean(0)).max() < 1e-4
    assert (z.argmax(1) == y).mean() > 0.6  # chance 0.25
