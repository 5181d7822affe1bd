"""Choosing the fusion exponent β on held-out data (never on the data you report)."""

from __future__ import annotations

from typing import Any

import torch

from geocsp.errors import ConfigError
from geocsp.evaluation.metrics import MetricAccumulator, iter_chunks
from geocsp.prior.fusion import check_beta, fused_log_scores

DEFAULT_BETA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
"""The β values :func:`tune_beta` tries by default."""


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
    for b in grid:
        check_beta(b)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    accs = [MetricAccumulator((1,), n_bins=1, device=dev) for _ in grid]
    for img, loc, lab, has in iter_chunks(
        img_probs, loc_probs, labels, has_location, batch_size, dev
    ):
        for acc, b in zip(accs, grid, strict=True):
            acc.update(fused_log_scores(img, loc, has, b), lab, log_space=True)
    results = [acc.compute() for acc in accs]
    best = max(range(len(grid)), key=lambda i: (results[i]["top1"], results[i]["mrr"], -i))
    return float(grid[best])
