"""Streaming metric state: exact counts and float64 sums over row chunks.

A :class:`MetricAccumulator` takes scores chunk by chunk and keeps top-k hit counts, the
reciprocal-rank and NLL sums and the calibration bins (integer counts and float64 sums), so
its flat state tensor can be all-reduced across ranks (sum) and turned back into metrics
with :meth:`MetricAccumulator.from_state`. :func:`iter_chunks` yields aligned dense row
chunks of (N, Q) inputs that may be tensors, arrays, memmaps or SciPy sparse matrices.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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
    topk_hits,
)
from geocsp.evaluation.rowstats import row_stats

METRIC_KEYS = ("top1", "top3", "top5", "top10", "mrr", "nll", "ece", "n")
"""Keys of every metric dict (image / location / fused)."""


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
        self.add_rows(*row_stats(scores, labels, log_space).finish(self.eps))

    def add_rows(self, ranks: Tensor, conf: Tensor, nll: Tensor) -> None:
        """Add rows given by their per-row values (e.g. ``RowStats.finish``); none is a no-op.

        Args:
            ranks: (B,) int64 true-class ranks (1 = best; a top-1 hit is rank 1).
            conf: (B,) top-1 confidences in [0, 1].
            nll: (B,) NLLs in nats.
        """
        if ranks.numel() == 0:
            return
        dev = ranks.device
        chunk = torch.cat(
            [
                torch.tensor([ranks.shape[0]], dtype=torch.float64, device=dev),
                topk_hits(ranks, self.ks).double(),
                (1.0 / ranks.double()).sum()[None],
                nll.double().sum()[None],
                calibration_bins(conf, ranks == 1, self.n_bins).reshape(-1),
            ]
        )
        self._state = self._state.to(dev) + chunk

    def state(self) -> Tensor:
        """The flat float64 state vector (a copy); sum it across ranks to merge.

        Returns:
            (1 + K + 2 + 3 * n_bins,) float64 tensor: n, top-k hits, MRR and NLL sums, ECE bins.
        """
        return self._state.clone()

    @classmethod
    def from_state(
        cls, state: Tensor, ks: tuple[int, ...] = DEFAULT_KS, n_bins: int = 15, eps: float = EPS
    ) -> MetricAccumulator:
        """Rebuild an accumulator from a (possibly all-reduced) state vector.

        Args:
            state: flat float64 state vector, as returned by :meth:`state`.
            ks: the top-k cut-offs the state was accumulated with.
            n_bins: the number of ECE bins the state was accumulated with.
            eps: probability floor of the NLL.

        Returns:
            An accumulator holding ``state``.

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
        """A new accumulator holding the rows of both (their states summed).

        Args:
            other: an accumulator with the same ``ks`` and ``n_bins``.

        Returns:
            A new accumulator; neither input changes.
        """
        return MetricAccumulator.from_state(
            self._state + other._state.to(self._state.device), self.ks, self.n_bins, self.eps
        )

    def compute(self) -> dict[str, float | int]:
        """Metrics ``top{k}``, ``mrr``, ``nll``, ``ece`` and ``n`` (NaN metrics when n == 0).

        Returns:
            Metric name -> value; ``n`` is the row count.
        """
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

    Args:
        x: (N, Q) scores: tensor, NumPy array / memmap or SciPy sparse matrix.
        start: first row.
        stop: one past the last row.
        device: the device of the returned tensor.
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

    Args:
        img_probs: (N, Q) image probabilities P(y|I).
        loc_probs: (N, Q) location-prior probabilities P(y|x).
        labels: (N,) int true classes.
        has_location: (N,) bool, whether each row has a location.
        batch_size: maximum rows per chunk, >= 1.
        device: the device of the yielded tensors.

    Yields:
        ``(img (b, Q), loc (b, Q), labels (b,), has_location (b,))`` on ``device``.

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
