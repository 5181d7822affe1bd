"""Evaluation sharded over ranks.

Each rank scores a contiguous share of the rows and the metric accumulators are summed
across ranks (exact integer counts and float64 sums).

:class:`~geocsp.evaluation.protocol.MetricAccumulator` states are sums over rows, so the
all-reduced state equals the state of one process holding every row: top-k and ``n`` are
identical, MRR / NLL / ECE equal up to float64 summation order (a few ulp).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from geocsp.distributed.context import all_reduce_sum, shard_range
from geocsp.evaluation.protocol import evaluate_scores
from geocsp.runtime import rank_and_world


def shard_rows(rows: np.ndarray) -> np.ndarray:
    """This rank's contiguous share of ``rows`` (all of them when not distributed).

    Args:
        rows: (N,) row indices (or any 1-D array).

    Returns:
        (N_r,) the slice of ``rows`` given by :func:`shard_range`.
    """
    start, stop = shard_range(len(rows), *rank_and_world())
    return rows[start:stop]


def evaluate_scores_reduced(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    beta: float = 1.0,
    batch_size: int = 4096,
    device: torch.device | str | None = None,
    n_bins: int = 15,
) -> dict[str, dict[str, float | int]]:
    """:func:`geocsp.evaluation.evaluate_scores` over this rank's rows, summed over ranks.

    Every rank must call it (with its own shard of rows, possibly empty) and gets the
    metrics of the union of all shards. Arguments are those of ``evaluate_scores``.

    Returns:
        ``{"image": m, "location": m, "fused": m}`` with ``top1 ... ece, n`` each.

    Args:
        img_probs: (N_r, Q) image probabilities P(y|I) of this rank's rows.
        loc_probs: (N_r, Q) location-prior probabilities P(y|x) (ignored where
            ``has_location`` is False).
        labels: (N_r,) int true classes in [0, Q).
        has_location: (N_r,) bool, whether the row has a location.
        beta: exponent of the location prior in the fused score, >= 0.
        batch_size: rows scored per chunk, >= 1.
        device: device the chunks are scored on; None picks the default.
        n_bins: number of equal-width confidence bins of the ECE.

    Raises:
        DatasetError: on mismatched shapes or out-of-range labels.
        ConfigError: on ``batch_size < 1``.
    """
    return evaluate_scores(img_probs, loc_probs, labels, has_location, beta=beta,
                           batch_size=batch_size, device=device, n_bins=n_bins, reduce=all_reduce_sum)
