"""Metric functions against hand-computed cases and float64 NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geocsp.errors import DatasetError
from geocsp.evaluation.functional import (
    calibration_bins,
    ece,
    mrr,
    nll,
    row_nll,
    topk_accuracy,
    true_class_rank,
)


def ref_rank(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Position of the label after a stable descending argsort, 1-based."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.array(
        [int(np.flatnonzero(o == y)[0]) + 1 for o, y in zip(order, labels, strict=True)]
    )


def ref_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    p = probs / probs.sum(1, keepdims=True)
    conf, pred = p.max(1), p.argmax(1)
    correct = (pred == labels).astype(float)
    total = 0.0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        m = (conf > lo) & (conf <= hi) if b > 0 else (conf <= hi)
        if m.any():
            total += m.sum() / len(conf) * abs(correct[m].mean() - conf[m].mean())
    return total


def random_case(seed: int, n: int = 300, q: int = 12, ties: bool = False):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(n, q)).astype(np.float64) if ties else rng.random((n, q))
    scores[:, 0] += 1e-3 if not ties else 0.0
    labels = rng.integers(0, q, size=n)
    return scores, labels


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_rank_matches_stable_argsort(seed: int, ties: bool) -> None:
    scores, labels = random_case(seed, ties=ties)
    got = true_class_rank(torch.tensor(scores), torch.tensor(labels))
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), ref_rank(scores, labels))
    if ties:  # the case really contains ties at the true class
        true = scores[np.arange(len(labels)), labels]
        assert ((scores == true[:, None]).sum(1) > 1).mean() > 0.5


def test_rank_hand_cases_and_argmax_consistency() -> None:
    s = torch.tensor([[0.2, 0.2, 0.2], [0.0, 1.0, 1.0], [3.0, 1.0, 2.0]])
    assert true_class_rank(s, torch.tensor([2, 2, 1])).tolist() == [3, 2, 3]
    rng = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (200, 5), generator=rng).float()
    ranks = true_class_rank(x, x.argmax(1))
    assert (ranks == 1).all()


def test_topk_and_mrr_against_numpy() -> None:
    scores, labels = random_case(3, q=15)
    ranks = true_class_rank(torch.tensor(scores), torch.tensor(labels))
    ref = ref_rank(scores, labels)
    acc = topk_accuracy(ranks)
    assert set(acc) == {"top1", "top3", "top5", "top10"}
    for k in (1, 3, 5, 10):
        assert acc[f"top{k}"] == pytest.approx(np.mean(ref <= k), abs=1e-12)
    assert mrr(ranks) == pytest.approx(np.mean(1.0 / ref), abs=1e-12)
    assert 0 < acc["top1"] < acc["top3"] < acc["top10"] < 1


def test_empty_inputs_give_nan() -> None:
    ranks = torch.zeros(0, dtype=torch.int64)
    assert math.isnan(mrr(ranks))
    assert math.isnan(topk_accuracy(ranks)["top1"])
    assert math.isnan(nll(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))
    assert math.isnan(ece(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))


def test_nll_against_numpy_and_clamp() -> None:
    scores, labels = random_case(4)
    p = scores / scores.sum(1, keepdims=True)
    expected = -np.log(p[np.arange(len(labels)), labels]).mean()
    assert nll(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(expected, rel=1e-12)
    # float32 input, unnormalised rows: same value to float32 precision
    assert nll(
        torch.tensor(scores * 7.0, dtype=torch.float32), torch.tensor(labels)
    ) == pytest.approx(expected, rel=1e-5)
    zero = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    assert row_nll(zero, torch.tensor([0, 1])).tolist() == pytest.approx([-math.log(1e-12)] * 2)


def test_row_nll_log_space_equals_prob_space() -> None:
    scores, labels = random_case(5)
    a = row_nll(torch.tensor(scores), torch.tensor(labels))
    b = row_nll(torch.log(torch.tensor(scores)), torch.tensor(labels), log_space=True)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_against_numpy(n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    logits = rng.normal(size=(500, 6)) * 2
    probs = np.exp(logits)
    labels = rng.integers(0, 6, 500)
    got = ece(torch.tensor(probs), torch.tensor(labels), n_bins=n_bins)
    assert got == pytest.approx(ref_ece(probs, labels, n_bins), abs=1e-12)
    assert got > 0.05  # miscalibrated on purpose: the reference is not trivially zero


def test_ece_perfect_calibration_is_zero() -> None:
    # confidence 0.75 in one bin, 3 of 4 correct
    p = torch.tensor([[0.75, 0.25]] * 4, dtype=torch.float64)
    assert ece(p, torch.tensor([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-15)
    bins = calibration_bins(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0, 1]), 4)
    assert bins[0].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_errors() -> None:
    s = torch.rand(3, 4)
    with pytest.raises(DatasetError, match=r"labels: value 4 outside \[0, 4\)"):
        true_class_rank(s, torch.tensor([0, 1, 4]))
    with pytest.raises(DatasetError, match=r"labels: value -1 outside"):
        nll(s, torch.tensor([0, -1, 2]))
    with pytest.raises(DatasetError, match=r"labels: expected shape \(3,\)"):
        ece(s, torch.tensor([0, 1]))
    with pytest.raises(DatasetError, match=r"scores: expected an \(N, Q\) matrix"):
        true_class_rank(torch.rand(3), torch.tensor([0, 1, 2]))
