"""Pure, batched classification metrics (spec §6): rank, top-k, MRR, NLL and ECE.

Every function takes torch tensors on any device and never loops over rows. Notation:
N rows (images), Q classes. ``scores`` are non-negative class scores (probabilities, or
products of probabilities such as the fused ``P(y|I) P(y|x)``), or log-scores when a
function takes ``log_space=True``.

Ties: the rank of the true class is ``1 + #(classes with a strictly higher score) +
#(classes with an equal score and a lower class index)``. This is what a stable
descending sort gives (the reference's argsort order) and it matches ``argmax``, which
returns the first maximal index, so ``rank == 1`` exactly when ``argmax == label``.

Ranks, confidences and NLLs are taken per row block (:mod:`geocsp.evaluation.rowstats`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geocsp.errors import DatasetError
from geocsp.evaluation.rowstats import (
    RowBlock,
    Workspace,
    confidence_from,
    nll_from,
    normaliser,
    row_blocks,
    serial,
)

DEFAULT_KS = (1, 3, 5, 10)
EPS = 1e-12
"""Probabilities are clamped to at least this value before taking a log (NLL <= 27.63)."""
def check_scores_labels(scores: Tensor, labels: Tensor, name: str = "scores") -> None:
    """Check that ``scores`` is (N, Q) and ``labels`` is (N,) with values in [0, Q).

    Raises:
        DatasetError: on a shape mismatch or a label outside [0, Q).
    """
    if scores.ndim != 2:
        raise DatasetError(f"{name}: expected an (N, Q) matrix, got shape {tuple(scores.shape)}")
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise DatasetError(
            f"labels: expected shape ({scores.shape[0]},) to match {name}, got {tuple(labels.shape)}"
        )
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= scores.shape[1]:
            bad = lo if lo < 0 else hi
            raise DatasetError(
                f"labels: value {bad} outside [0, {scores.shape[1]}); drop unlabelled rows (-1) first"
            )


def true_class_rank(scores: Tensor, labels: Tensor) -> Tensor:
    """1-based rank of the true class in each row, without sorting.

    Computed by comparing every score to the gathered true score: O(N Q) instead of a
    sort's O(N Q log Q). Ties count the lower class index as ahead (see module docs).

    Args:
        scores: (N, Q) class scores (any monotone transform, e.g. log-scores, gives the
            same ranks).
        labels: (N,) int64 true class indices in [0, Q).

    Returns:
        (N,) int64 ranks, 1 = best.

    Raises:
        DatasetError: on mismatched shapes or out-of-range labels.

    >>> s = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    >>> true_class_rank(s, torch.tensor([2, 0, 1])).tolist()
    [2, 1, 2]
    """
    labels = labels.to(device=scores.device, dtype=torch.long)
    check_scores_labels(scores, labels)
    work, blocks = Workspace(), row_blocks(scores.shape[0], scores.shape[1], scores.device)
    with serial(blocks, scores.device):
        ahead = [RowBlock(labels[a:b], scores.shape[1], work).ahead(scores[a:b])[1] for a, b in blocks]
    return torch.cat(ahead).to(torch.int64) + 1


def topk_hits(ranks: Tensor, ks: tuple[int, ...] = DEFAULT_KS) -> Tensor:
    """Number of rows whose true class is within the top k, for each k.

    Args:
        ranks: (N,) int64 ranks from :func:`true_class_rank`.
        ks: the k values.

    Returns:
        (len(ks),) int64 counts.

    >>> topk_hits(torch.tensor([1, 2, 4]), ks=(1, 3)).tolist()
    [1, 2]
    """
    k = torch.as_tensor(ks, device=ranks.device)
    return (ranks[:, None] <= k[None, :]).sum(dim=0)


def topk_accuracy(ranks: Tensor, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """Top-k accuracy for each k (NaN for zero rows).

    Args:
        ranks: (N,) int64 ranks from :func:`true_class_rank`.
        ks: the k values.

    Returns:
        ``{"top1": ..., "top3": ...}`` fractions in [0, 1].

    >>> topk_accuracy(torch.tensor([1, 2, 4, 11]), ks=(1, 3, 10))
    {'top1': 0.25, 'top3': 0.5, 'top10': 0.75}
    """
    hits = topk_hits(ranks, ks).double()
    n = ranks.numel()
    return {
        f"top{k}": (float(h) / n if n else math.nan) for k, h in zip(ks, hits.tolist(), strict=True)
    }


def mrr(ranks: Tensor) -> float:
    """Mean reciprocal rank, mean over rows of 1 / rank (NaN for zero rows).

    Args:
        ranks: (N,) int64 ranks from :func:`true_class_rank`.

    >>> mrr(torch.tensor([1, 2, 4, 4]))
    0.5
    """
    if ranks.numel() == 0:
        return math.nan
    return float((1.0 / ranks.double()).mean())


def row_nll(scores: Tensor, labels: Tensor, eps: float = EPS, log_space: bool = False) -> Tensor:
    """Per-row negative log-likelihood of the true class under row-normalised scores.

    Args:
        scores: (N, Q) non-negative scores, normalised here to sum to 1 per row; or
            log-scores when ``log_space`` (normalised with a log-softmax).
        labels: (N,) int64 true class indices.
        eps: probabilities are clamped to at least ``eps``, so the NLL is at most
            ``-log(eps)``.
        log_space: whether ``scores`` are log-scores.

    Returns:
        (N,) NLL in nats, in the dtype of ``scores``.

    >>> s = torch.tensor([[1.0, 3.0], [0.0, 2.0]], dtype=torch.float64)
    >>> row_nll(s, torch.tensor([1, 0])).round(decimals=4).tolist()
    [0.2877, 27.631]
    """
    labels = labels.to(device=scores.device, dtype=torch.long)[:, None]
    return nll_from(scores.gather(1, labels).squeeze(1), normaliser(scores, log_space), eps, log_space)


def nll(probs: Tensor, labels: Tensor, eps: float = EPS) -> float:
    """Mean negative log-likelihood (nats) of the row-normalised scores.

    Args:
        probs: (N, Q) non-negative scores; each row is divided by its sum first.
        labels: (N,) int64 true class indices in [0, Q).
        eps: lower clamp of the true-class probability.

    Raises:
        DatasetError: on mismatched shapes or out-of-range labels.

    >>> round(nll(torch.tensor([[0.2, 0.2], [1.0, 3.0]]), torch.tensor([0, 1])), 6)
    0.490415
    """
    check_scores_labels(probs, labels.to(probs.device))
    if probs.shape[0] == 0:
        return math.nan
    return float(row_nll(probs, labels, eps).double().mean())


def top1_confidence(scores: Tensor, log_space: bool = False) -> tuple[Tensor, Tensor]:
    """Top-1 confidence and predicted class of row-normalised scores.

    Args:
        scores: (N, Q) non-negative scores, or log-scores when ``log_space``.
        log_space: whether ``scores`` are log-scores.

    Returns:
        (N,) confidence in [0, 1] and (N,) int64 predicted class (first maximal index).

    >>> conf, pred = top1_confidence(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
    >>> conf.tolist(), pred.tolist()
    ([0.75, 0.5], [1, 0])
    """
    top, pred = scores.max(dim=1)  # normalising is monotone: no (N, Q) probability matrix
    return confidence_from(top, normaliser(scores, log_space), log_space), pred


def calibration_bins(conf: Tensor, correct: Tensor, n_bins: int = 15) -> Tensor:
    """Per-bin sums for the ECE over equal-width confidence bins.

    Bin b (0-based) holds confidences in ``(b / n_bins, (b + 1) / n_bins]``; a
    confidence of exactly 0 goes into bin 0 (Guo et al. 2017, arXiv:1706.04599).

    Args:
        conf: (N,) top-1 confidences in [0, 1].
        correct: (N,) bool, whether the top-1 prediction is the true class.
        n_bins: number of bins.

    Returns:
        (3, n_bins) float64: row 0 counts, row 1 sums of confidence, row 2 sums of
        correctness.

    >>> conf = torch.tensor([0.1, 0.5, 0.55, 1.0], dtype=torch.float64)
    >>> calibration_bins(conf, torch.tensor([1, 0, 1, 1]), 2).tolist()
    [[2.0, 2.0], [0.6, 1.55], [1.0, 2.0]]
    """
    conf = conf.double()
    b = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    out = torch.zeros(3, n_bins, dtype=torch.float64, device=conf.device)
    out[0].index_add_(0, b, torch.ones_like(conf))
    out[1].index_add_(0, b, conf)
    out[2].index_add_(0, b, correct.double())
    return out


def ece_from_bins(bins: Tensor) -> float:
    """Expected calibration error from :func:`calibration_bins` sums (NaN when empty).

    ``ECE = sum_b (n_b / N) |acc_b - conf_b| = (1 / N) sum_b |correct_b - conf_b|``.

    >>> round(ece_from_bins(torch.tensor([[2.0, 2.0], [0.6, 1.55], [1.0, 2.0]])), 6)
    0.2125
    """
    n = float(bins[0].sum())
    if n == 0:
        return math.nan
    return float((bins[2] - bins[1]).abs().sum()) / n


def ece(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence of row-normalised scores.

    Args:
        probs: (N, Q) non-negative scores; each row is divided by its sum first.
        labels: (N,) int64 true class indices in [0, Q).
        n_bins: number of equal-width bins over [0, 1].

    Raises:
        DatasetError: on mismatched shapes or out-of-range labels.

    >>> p = torch.tensor([[0.9, 0.1], [0.65, 0.35], [0.25, 0.75]])
    >>> round(ece(p, torch.tensor([0, 1, 1]), n_bins=10), 6)
    0.333333
    """
    labels = labels.to(device=probs.device, dtype=torch.long)
    check_scores_labels(probs, labels)
    conf, pred = top1_confidence(probs)
    return ece_from_bins(calibration_bins(conf, pred == labels, n_bins))
