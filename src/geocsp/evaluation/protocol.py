"""The evaluation protocol of spec §6: image-only, location-only and fused metrics.

Scores are processed in row chunks on a device; metrics accumulate exactly (integer
counts and float64 sums) in a :class:`MetricAccumulator`, whose flat state tensor can be
all-reduced across ranks (sum) and turned back into metrics with
:meth:`MetricAccumulator.from_state`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.functional import (
    DEFAULT_KS,
    EPS,
    calibration_bins,
    check_scores_labels,
    ece_from_bins,
    row_nll,
    top1_confidence,
    topk_hits,
    true_class_rank,
)

METRIC_KEYS = ("top1", "top3", "top5", "top10", "mrr", "nll", "ece", "n")


class MetricAccumulator:
    """Exact, mergeable running sums for top-k, MRR, NLL and ECE.

    The state is one float64 vector ``[n, hits@k..., sum 1/rank, sum NLL,
    bin counts..., bin confidence sums..., bin correct sums...]``; every entry is a sum
    over rows, so the state of a union of row sets is the sum of the states (for
    ``torch.distributed.all_reduce`` with ``SUM``).

    Args:
        ks: the k values of top-k accuracy.
        n_bins: number of equal-width ECE bins.
        eps: lower clamp of the true-class probability in the NLL.
        device: where the state lives (the device of the scores passed to ``update``).

    Raises:
        ConfigError: on empty or non-positive ``ks`` or ``n_bins < 1``.
    """

    def __init__(
        self,
        ks: tuple[int, ...] = DEFAULT_KS,
        n_bins: int = 15,
        eps: float = EPS,
        device: torch.device | str | None = None,
    ) -> None:
        if not ks or min(ks) < 1:
            raise ConfigError(f"ks: expected positive integers, got {ks}")
        if n_bins < 1:
            raise ConfigError(f"n_bins: expected >= 1, got {n_bins}")
        self.ks = tuple(int(k) for k in ks)
        self.n_bins = int(n_bins)
        self.eps = eps
        size = 1 + len(self.ks) + 2 + 3 * self.n_bins
        self._state = torch.zeros(size, dtype=torch.float64, device=device)

    def update(self, scores: Tensor, labels: Tensor, log_space: bool = False) -> None:
        """Add a chunk of rows.

        Args:
            scores: (B, Q) non-negative scores (row-normalised for NLL/ECE), or
                log-scores when ``log_space``.
            labels: (B,) int64 true class indices in [0, Q).
            log_space: whether ``scores`` are log-scores.

        Raises:
            DatasetError: on mismatched shapes or out-of-range labels.
        """
        labels = labels.to(device=scores.device, dtype=torch.long)
        check_scores_labels(scores, labels)
        if scores.shape[0] == 0:
            return
        ranks = true_class_rank(scores, labels)
        conf, pred = top1_confidence(scores, log_space=log_space)
        k = len(self.ks)
        chunk = torch.cat(
            [
                torch.tensor([scores.shape[0]], dtype=torch.float64, device=scores.device),
                topk_hits(ranks, self.ks).double(),
                (1.0 / ranks.double()).sum()[None],
                row_nll(scores, labels, self.eps, log_space).double().sum()[None],
                calibration_bins(conf, pred == labels, self.n_bins).reshape(-1),
            ]
        )
        assert chunk.shape[0] == 3 + k + 3 * self.n_bins
        self._state = self._state.to(scores.device) + chunk

    def state(self) -> Tensor:
        """The flat float64 state vector (a copy); sum it across ranks to merge."""
        return self._state.clone()

    @classmethod
    def from_state(
        cls, state: Tensor, ks: tuple[int, ...] = DEFAULT_KS, n_bins: int = 15, eps: float = EPS
    ) -> MetricAccumulator:
        """Rebuild an accumulator from a (possibly all-reduced) state vector.

        Raises:
            ConfigError: when the state length does not match ``ks`` and ``n_bins``.
        """
        acc = cls(ks, n_bins, eps, device=state.device)
        if state.shape != acc._state.shape:
            raise ConfigError(
                f"state: expected length {acc._state.shape[0]} for ks={ks}, n_bins={n_bins}, "
                f"got shape {tuple(state.shape)}"
            )
        acc._state = state.detach().to(torch.float64).clone()
        return acc

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """A new accumulator holding the rows of both (their states summed)."""
        return MetricAccumulator.from_state(
            self._state + other._state.to(self._state.device), self.ks, self.n_bins, self.eps
        )

    def compute(self) -> dict[str, float | int]:
        """Metrics ``top{k}``, ``mrr``, ``nll``, ``ece`` and ``n`` (NaN metrics when n == 0)."""
        s = self._state.cpu()
        k = len(self.ks)
        n = int(s[0])
        out: dict[str, float | int] = {}
        for i, kk in enumerate(self.ks):
            out[f"top{kk}"] = float(s[1 + i]) / n if n else math.nan
        out["mrr"] = float(s[1 + k]) / n if n else math.nan
        out["nll"] = float(s[2 + k]) / n if n else math.nan
        out["ece"] = ece_from_bins(s[3 + k :].reshape(3, self.n_bins))
        out["n"] = n
        return out


def to_dense_rows(x: Any, start: int, stop: int, device: torch.device) -> Tensor:
    """Rows ``start:stop`` of a tensor, NumPy array, memmap or SciPy sparse matrix.

    Returns:
        (stop - start, Q) float32 or float64 tensor on ``device`` (float16 is widened).
    """
    part = x[start:stop]
    if hasattr(part, "toarray"):
        part = part.toarray()
    if not isinstance(part, Tensor):
        arr = np.asarray(part)
        if not arr.flags.writeable:  # memmaps / broadcast views: copy this chunk only
            arr = np.array(arr)
        t = torch.from_numpy(arr)
    else:
        t = part
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.to(device)


def iter_chunks(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    batch_size: int,
    device: torch.device,
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Yield ``(img, loc, labels, has_location)`` tensor chunks of at most ``batch_size`` rows.

    Raises:
        DatasetError: when the inputs do not have matching (N, Q) / (N,) shapes.
        ConfigError: when ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected >= 1, got {batch_size}")
    n = img_probs.shape[0]
    for name, arr in (("loc_probs", loc_probs), ("labels", labels), ("has_location", has_location)):
        if arr.shape[0] != n:
            raise DatasetError(f"{name}: expected {n} rows to match img_probs, got {arr.shape[0]}")
    if tuple(loc_probs.shape) != tuple(img_probs.shape):
        raise DatasetError(
            f"loc_probs: expected shape {tuple(img_probs.shape)} like img_probs, "
            f"got {tuple(loc_probs.shape)}"
        )
    lab = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    has = torch.as_tensor(np.asarray(has_location), dtype=torch.bool)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield (
            to_dense_rows(img_probs, start, stop, device),
            to_dense_rows(loc_probs, start, stop, device),
            lab[start:stop].to(device),
            has[start:stop].to(device),
        )


def evaluate_scores(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    beta: float = 1.0,
    batch_size: int = 4096,
    device: torch.device | str | None = None,
    n_bins: int = 15,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Image-only, location-only and fused metrics (spec §6).

    Args:
        img_probs: (N, Q) image-classifier probabilities P(y|I): tensor, NumPy array,
            memmap or SciPy sparse matrix (densified one chunk at a time).
        loc_probs: (N, Q) location-prior probabilities P(y|x) = sigmoid(T e(x)); rows
            without a location are ignored (may hold anything, e.g. NaN).
        labels: (N,) int true class indices in [0, Q).
        has_location: (N,) bool, whether each row has a valid location.
        beta: exponent of the location prior in the fused score.
        batch_size: rows per chunk.
        device: where to compute (default: CPU).
        n_bins: number of ECE bins.
        reduce: optional sum over processes of the stacked (3, S) accumulator states (e.g.
            an all-reduce): each rank passes its own rows and gets the metrics of all rows.

    Returns:
        ``{"image": m, "location": m, "fused": m}``; each ``m`` has ``top1, top3, top5,
        top10, mrr, nll, ece, n``. ``location`` covers only rows with a location (its
        ``n`` says how many); ``fused`` covers all rows, rows without a location using
        P(y|I) alone. Metrics over zero rows are NaN.

    Raises:
        DatasetError: on mismatched shapes or out-of-range labels.
        ConfigError: on a negative or non-finite ``beta`` or ``batch_size < 1``.
    """
    from geocsp.prior.fusion import fused_log_scores, fused_product64

    dev = torch.device(device) if device is not None else torch.device("cpu")
    accs = {
        key: MetricAccumulator(DEFAULT_KS, n_bins, device=dev)
        for key in ("image", "location", "fused")
    }
    for img, loc, lab, has in iter_chunks(
        img_probs, loc_probs, labels, has_location, batch_size, dev
    ):
        accs["image"].update(img, lab)
        every = bool(has.all())
        accs["location"].update(loc if every else loc[has], lab if every else lab[has])
        if beta == 1.0:  # exact float64 products: no logs over (B, Q)
            accs["fused"].update(fused_product64(img, loc, has), lab)
        else:
            accs["fused"].update(fused_log_scores(img, loc, has, beta), lab, log_space=True)
    if reduce is None:
        return {key: acc.compute() for key, acc in accs.items()}
    states = reduce(torch.stack([acc.state() for acc in accs.values()]))
    return {
        key: MetricAccumulator.from_state(states[i], DEFAULT_KS, n_bins).compute()
        for i, key in enumerate(accs)
    }
