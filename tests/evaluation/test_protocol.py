"""evaluate_scores against direct computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.functional import ece, mrr, nll, topk_accuracy, true_class_rank
from geocsp.evaluation.metrics import METRIC_KEYS
from geocsp.evaluation.protocol import evaluate_scores

from ._cases import make_case


def direct(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    s, y = torch.tensor(scores), torch.tensor(labels)
    out = topk_accuracy(true_class_rank(s, y))
    out.update(mrr=mrr(true_class_rank(s, y)), nll=nll(s, y), ece=ece(s, y), n=len(labels))
    return out


def assert_metrics_close(got: dict, ref: dict) -> None:
    assert set(got) == set(METRIC_KEYS)
    assert got["n"] == ref["n"]
    for k in METRIC_KEYS[:-1]:
        assert got[k] == pytest.approx(ref[k], rel=1e-6, abs=1e-9), k


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_evaluate_matches_direct_computation(beta: float) -> None:
    img, loc, labels, has = make_case()
    res = evaluate_scores(img, loc, labels, has, beta=beta, batch_size=50)
    assert_metrics_close(res["image"], direct(img, labels))
    assert_metrics_close(res["location"], direct(loc[has], labels[has]))
    fused = img.astype(np.float64).copy()
    fused[has] = img[has] * loc[has].astype(np.float64) ** beta  # float64 reference
    assert_metrics_close(res["fused"], direct(fused, labels))
    assert res["location"]["n"] == int(has.sum()) < res["fused"]["n"] == len(labels)


def test_prior_helps_when_informative() -> None:
    img, loc, labels, has = make_case(1)
    loc[has] = 0.05
    loc[has, labels[has]] = 0.9
    res = evaluate_scores(img, loc, labels, has)
    assert res["location"]["top1"] == 1.0
    assert res["fused"]["top1"] > res["image"]["top1"] + 0.3


def test_chunking_and_input_types_agree(tmp_path: Path) -> None:
    img, loc, labels, has = make_case(2)
    ref = evaluate_scores(img, loc, labels, has, batch_size=10_000)
    mm = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float32, shape=img.shape)
    mm[:] = img
    for img_in, bs in ((mm, 7), (sp.csr_matrix(img), 64), (torch.tensor(img), 1)):
        got = evaluate_scores(img_in, loc, labels, has, batch_size=bs)
        for key in ("image", "location", "fused"):
            assert got[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), (type(img_in), key)
    half = evaluate_scores(img.astype(np.float16), loc, labels, has, batch_size=33)
    assert half["image"]["top1"] == pytest.approx(ref["image"]["top1"], abs=0.02)


def test_no_locations_and_beta_zero() -> None:
    img, loc, labels, _ = make_case(3)
    none = evaluate_scores(img, loc, labels, np.zeros(len(labels), bool))
    assert none["location"]["n"] == 0 and math.isnan(none["location"]["top1"])
    assert none["fused"] == pytest.approx(none["image"])
    loc = np.nan_to_num(loc, nan=0.0)  # zeros where beta=0 must not give NaN
    b0 = evaluate_scores(img, loc, labels, np.ones(len(labels), bool), beta=0.0)
    assert b0["fused"] == pytest.approx(b0["image"])


def test_log_space_ranks_survive_underflow() -> None:
    # float32 products underflow to 0 here; the log-space path keeps the order.
    img = np.array([[1e-30, 2e-30, 1.0 - 3e-30]], dtype=np.float32)
    loc = np.array([[1e-20, 1e-25, 1e-37]], dtype=np.float32)
    assert float((torch.tensor(img) * torch.tensor(loc) ** 2).max()) == 0.0
    res = evaluate_scores(img, loc, np.array([0]), np.array([True]), beta=2.0)
    assert res["fused"]["top1"] == 1.0
    assert res["fused"]["nll"] < 1e-3


def test_errors() -> None:
    img, loc, labels, has = make_case(5, n=10)
    with pytest.raises(DatasetError, match="loc_probs: expected 10 rows"):
        evaluate_scores(img, loc[:5], labels, has)
    with pytest.raises(DatasetError, match=r"loc_probs: expected shape \(10, 20\)"):
        evaluate_scores(img, loc[:, :3], labels, has)
    with pytest.raises(DatasetError, match="has_location: expected 10 rows"):
        evaluate_scores(img, loc, labels, has[:3])
    labels[3] = -1
    with pytest.raises(DatasetError, match="labels: value -1 outside"):
        evaluate_scores(img, loc, labels, has)
    with pytest.raises(ConfigError, match="beta: expected a finite value >= 0"):
        evaluate_scores(img, loc, np.zeros(10, int), has, beta=-1.0)
    with pytest.raises(ConfigError, match="batch_size: expected >= 1"):
        evaluate_scores(img, loc, np.zeros(10, int), has, batch_size=0)
