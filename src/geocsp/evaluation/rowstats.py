"""Per-row ranks, maxima and normalisers of score matrices, one cache-sized row block at a time.

Streaming evaluation takes a score matrix's statistics per row block (:class:`RowStats`): on a
CPU a block of ~``BLOCK_ELEMS`` scores stays in cache while the true class's rank (a count of
the scores above the true one, ties by class index, no sort), the row maximum and the row sum
(or logsumexp) are taken, with one intra-op thread (:func:`serial`) and comparisons counted in
a reused float buffer instead of fresh (N, Q) boolean and int64 matrices. Every per-row value
equals the whole-matrix one bit for bit (row reductions are row-local;
tests/evaluation/test_fast_metrics.py checks against the previous implementation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import torch
from torch import Tensor

BLOCK_ELEMS = 1 << 19
"""Scores per CPU row block (2 MiB in float32, 4 MiB in float64: they stay in cache)."""
MIN_BLOCK_ROWS = 16
"""Fewest rows per CPU block; balanced blocks then never hold a single row (with several
threads a one-row reduction over more than 32,768 scores may sum in another order)."""


def normaliser(scores: Tensor, log_space: bool = False) -> Tensor:
    """Row sums of (N, Q) scores, or their logsumexp when ``log_space``: (N,) in their dtype."""
    return torch.logsumexp(scores, dim=1) if log_space else scores.sum(dim=1)


def nll_from(true: Tensor, norm: Tensor, eps: float, log_space: bool = False) -> Tensor:
    """(N,) NLL from the (N,) true scores and :func:`normaliser`: ``-log max(s_y / sum, eps)``."""
    if log_space:  # log-softmax of the true class only: s_y - logsumexp(s)
        return (-(true - norm)).clamp(max=-math.log(eps))
    total = norm.clamp(min=torch.finfo(norm.dtype).tiny)
    return -torch.log((true / total).clamp(min=eps))


def confidence_from(top: Tensor, norm: Tensor, log_space: bool = False) -> Tensor:
    """(N,) top-1 confidence from the (N,) row maxima and :func:`normaliser`: ``max / sum``."""
    if log_space:
        return torch.exp(top - norm)
    return top / norm.clamp(min=torch.finfo(norm.dtype).tiny)


def row_blocks(n: int, q: int, device: torch.device) -> list[tuple[int, int]]:
    """Balanced ``[lo, hi)`` row ranges of about ``BLOCK_ELEMS`` scores each.

    One block of all rows off the CPU (or when ``n`` is small); otherwise sizes differ by at
    most one row and are at least ``MIN_BLOCK_ROWS / 2``.

    >>> row_blocks(40, 2**16, torch.device("cpu"))
    [(0, 13), (13, 26), (26, 40)]
    """
    per = max(MIN_BLOCK_ROWS, BLOCK_ELEMS // max(q, 1))
    if device.type != "cpu" or n <= per:
        return [(0, n)]
    k = -(-n // per)
    return list(pairwise(n * i // k for i in range(k + 1)))


@contextmanager
def serial(blocks: list[tuple[int, int]], device: torch.device) -> Iterator[None]:
    """One intra-op thread while several CPU ``blocks`` are processed, then the old count.

    Cache-sized ops gain little from threads, and thousands of OpenMP barriers stall whenever
    another process holds a core (2 threads were 3x slower than 1 on the shared 2-core
    machine). Multi-row reductions are row-serial either way, so results do not change.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1 if len(blocks) > 1 and device.type == "cpu" else n)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class Workspace:
    """Scratch matrices reused from block to block (no fresh (N, Q) temporaries)."""

    def __init__(self) -> None:
        self._bufs: dict[str, Tensor] = {}

    def get(self, name: str, rows: int, q: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A (rows, q) matrix of ``dtype`` with undefined contents, named ``name``."""
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < rows * q or buf.dtype != dtype or buf.device != device:
            buf = self._bufs[name] = torch.empty(rows * q, dtype=dtype, device=device)
        return buf[: rows * q].view(rows, q)


class RowBlock:
    """The true classes of one row block, shared by every score matrix of that block.

    Args:
        labels: (b,) int64 true classes in [0, q); q: number of classes Q; work: scratch buffers.
    """

    def __init__(self, labels: Tensor, q: int, work: Workspace) -> None:
        self.labels, self.q, self.work = labels, q, work
        self._before: dict[torch.dtype, Tensor] = {}

    def before(self, dtype: torch.dtype) -> Tensor:
        """(b, Q) 1.0 where the class index is below the row's label (built once per dtype)."""
        if dtype not in self._before:
            dev = self.labels.device  # a float compare is ~20x an int64 one
            idx = torch.arange(self.q, device=dev, dtype=dtype)  # exact below 2**24
            out = self.work.get(f"before-{dtype}", len(self.labels), self.q, dtype, dev)
            self._before[dtype] = torch.lt(idx[None, :], self.labels[:, None].to(dtype), out=out)
        return self._before[dtype]

    def ahead(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """True scores and the number of classes ranked above the true one (see module docs).

        Comparisons write into a float buffer of the scores' dtype (a mixed-dtype output is
        ~20x slower) and are summed as floats: exact counts below 2**24 classes.

        Args:
            scores: (b, Q) scores or log-scores of this block's rows.

        Returns:
            (b,) true-class scores and (b,) float counts: rank - 1.
        """
        dt = scores.dtype if scores.dtype in (torch.float32, torch.float64) else torch.float32
        dt = torch.float64 if self.q >= 2**24 else dt
        true = scores.gather(1, self.labels[:, None])
        buf = self.work.get(f"count-{dt}", scores.shape[0], self.q, dt, scores.device)
        count = torch.gt(scores, true, out=buf).sum(dim=1)
        eq = torch.eq(scores, true, out=buf)
        if bool((eq.sum(dim=1) > 1).any()):  # ties with the true score: lower indices first
            count += eq.mul_(self.before(dt)).sum(dim=1)
        return true.squeeze(1), count


class RowStats:
    """Per-row true score, maximum, normaliser and rank of one score matrix, block by block.

    Feed the row blocks in order with :meth:`add`; :meth:`finish` gives what a
    :class:`~geocsp.evaluation.metrics.MetricAccumulator` sums (equal bit for bit to
    :func:`true_class_rank`, :func:`top1_confidence` and :func:`row_nll` of the whole matrix).

    Args:
        log_space: whether the scores are log-scores.
    """

    def __init__(self, log_space: bool = False) -> None:
        self.log_space = log_space
        self._parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    def add(self, scores: Tensor, block: RowBlock) -> None:
        """Take the statistics of the (b, Q) ``scores`` of ``block``'s rows."""
        if scores.shape[0]:
            true, count = block.ahead(scores)
            self._parts.append((true, scores.amax(dim=1), normaliser(scores, self.log_space), count))

    def finish(self, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        """(N,) int64 ranks, top-1 confidences and NLLs of all rows added (empty if none)."""
        if not self._parts:
            empty = torch.zeros(0)
            return empty.long(), empty, empty
        true, top, norm, count = (torch.cat(p) for p in zip(*self._parts, strict=True))
        ls = self.log_space
        return count.to(torch.int64) + 1, confidence_from(top, norm, ls), nll_from(true, norm, eps, ls)


def row_stats(scores: Tensor, labels: Tensor, log_space: bool = False) -> RowStats:
    """:class:`RowStats` of a whole (N, Q) matrix, taken in :func:`row_blocks`.

    Args:
        scores: (N, Q) scores, or log-scores when ``log_space``.
        labels: (N,) int64 true classes in [0, Q) (not checked here).
        log_space: whether ``scores`` are log-scores.
    """
    stats, work, blocks = RowStats(log_space), Workspace(), row_blocks(scores.shape[0], scores.shape[1], scores.device)
    with serial(blocks, scores.device):
        for lo, hi in blocks:
            stats.add(scores[lo:hi], RowBlock(labels[lo:hi], scores.shape[1], work))
    return stats
