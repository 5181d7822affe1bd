"""Choosing fusion parameters on held-out data (never on the data you report).

:func:`grid_states` is the one pass over the rows that scores a whole grid of fusions
``(β, ε)`` (optionally split into row groups, for cross-fitting); :func:`tune_beta` picks
the paper-form exponent from it, and :mod:`geocsp.evaluation.calibration` the calibrated
fusion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.functional import check_scores_labels
from geocsp.evaluation.metrics import MetricAccumulator, iter_chunks
from geocsp.evaluation.rowstats import RowBlock, RowStats, Workspace, row_blocks, serial
from geocsp.prior.fusion import check_beta, check_eps, combine_log_scores, prior_log_term

DEFAULT_BETA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
"""The β values :func:`tune_beta` tries by default."""


def grid_states(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    points: Sequence[tuple[float, float]],
    *,
    groups: Any = None,
    n_groups: int = 1,
    ks: tuple[int, ...] = (1,),
    n_bins: int = 1,
    batch_size: int = 4096,
    device: torch.device | str | None = None,
) -> Tensor:
    """Metric-accumulator states of every fusion ``(β, ε)`` in ``points``, in one pass.

    Each row block's ``log P(y|I)`` is computed once and ``log(ε + (1 − ε) P(y|x))`` once per
    distinct ε; the fused log-scores of each point are ranked and summed while the block is
    in cache (:class:`~geocsp.evaluation.rowstats.RowStats`) and feed a
    :class:`~geocsp.evaluation.metrics.MetricAccumulator` per (group, point). States are
    sums over rows, so the state of a union of groups is the sum of their states.

    Args:
        img_probs: (N, Q) P(y|I) (tensor, NumPy array, memmap or SciPy sparse).
        loc_probs: (N, Q) P(y|x) (ignored where ``has_location`` is False).
        labels: (N,) true class indices in [0, Q).
        has_location: (N,) bool.
        points: the ``(β, ε)`` pairs, β finite >= 0, ε in [0, 1].
        groups: optional (N,) int group of each row in [0, n_groups) (default: all 0).
        n_groups: number of groups.
        ks: top-k cut-offs of the accumulators.
        n_bins: ECE bins of the accumulators.
        batch_size: rows per chunk.
        device: where to compute (default: CPU).

    Returns:
        (n_groups, len(points), S) float64 states (see ``MetricAccumulator.state``).

    Raises:
        ConfigError: on an empty grid, an invalid β or ε, or a bad ``batch_size``.
        DatasetError: on mismatched shapes, out-of-range labels or groups.
    """
    if len(points) == 0:
        raise ConfigError("grid: expected at least one (beta, eps) point")
    for beta, eps in points:
        check_beta(beta)
        check_eps(eps)
    n = img_probs.shape[0]
    gid = np.zeros(n, np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    if gid.shape != (n,) or (n and (gid.min() < 0 or gid.max() >= n_groups)):
        raise DatasetError(f"groups: expected {n} values in [0, {n_groups}), got shape {gid.shape}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    accs = [[MetricAccumulator(ks, n_bins, device=dev) for _ in points] for _ in range(n_groups)]
    epsilons = sorted({float(eps) for _, eps in points})
    start, work = 0, Workspace()
    for img, loc, lab, has in iter_chunks(
        img_probs, loc_probs, labels, has_location, batch_size, dev
    ):
        check_scores_labels(img, lab)
        g = torch.from_numpy(gid[start : start + img.shape[0]])
        start += img.shape[0]
        counts = torch.bincount(g, minlength=n_groups).tolist()
        # each group's rows in order, in blocks; one group: views, no copies
        order = torch.argsort(g, stable=True).to(dev) if n_groups > 1 else None
        lo = 0
        for grp, cnt in enumerate(counts):
            stats, blocks = [RowStats(log_space=True) for _ in points], row_blocks(cnt, img.shape[1], dev)
            with serial(blocks, dev):
                for a, b in blocks:
                    rows = slice(lo + a, lo + b) if order is None else order[lo + a : lo + b]
                    i, lp, y, h = (t[rows] for t in (img, loc, lab, has))
                    block = RowBlock(y, img.shape[1], work)
                    log_img = i.double().log()
                    log_prior = {eps: prior_log_term(lp, h, eps) for eps in epsilons}
                    for p, (beta, eps) in enumerate(points):
                        stats[p].add(combine_log_scores(log_img, log_prior[float(eps)], beta), block)
            for p, st in enumerate(stats):
                accs[grp][p].add_rows(*st.finish(accs[grp][p].eps))
            lo += cnt
    return torch.stack([torch.stack([acc.state() for acc in row]) for row in accs]).cpu()


def tune_beta(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    grid: tuple[float, ...] = DEFAULT_BETA_GRID,
    batch_size: int = 4096,
    device: torch.device | str | None = None,
) -> float:
    """The β in ``grid`` with the best fused top-1 accuracy, ties broken by MRR.

    Remaining ties go to the earliest β in ``grid``. Tune on validation data, never on
    the data you report. One pass over the rows evaluates the whole grid.

    Args:
        img_probs: (N, Q) P(y|I) (tensor, NumPy array, memmap or SciPy sparse).
        loc_probs: (N, Q) P(y|x).
        labels: (N,) true class indices.
        has_location: (N,) bool.
        grid: candidate β values, each >= 0.
        batch_size: rows per chunk.
        device: where to compute (default: CPU).

    Returns:
        The chosen β.

    Raises:
        ConfigError: on an empty grid or a negative β.
        DatasetError: on mismatched shapes or out-of-range labels.

    >>> img = torch.tensor([[0.6, 0.4], [0.6, 0.4], [0.3, 0.7]])
    >>> loc = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.5, 0.5]])
    >>> tune_beta(img, loc, torch.tensor([1, 1, 1]), torch.tensor([True, True, True]))
    0.5
    """
    if len(grid) == 0:
        raise ConfigError("grid: expected at least one beta value")
    states = grid_states(
        img_probs, loc_probs, labels, has_location, [(b, 0.0) for b in grid],
        batch_size=batch_size, device=device,
    )[0]
    results = [MetricAccumulator.from_state(s, (1,), n_bins=1).compute() for s in states]
    best = max(range(len(grid)), key=lambda i: (results[i]["top1"], results[i]["mrr"], -i))
    return float(grid[best])
