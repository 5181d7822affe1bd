"""The evaluation protocol of spec §6: image-only, location-only and fused metrics.

Scores are processed in row chunks on a device; metrics accumulate exactly in a
:class:`~geocsp.evaluation.metrics.MetricAccumulator`, whose state can be reduced across
ranks through the ``reduce`` hook of :func:`evaluate_scores`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from geocsp.evaluation.functional import DEFAULT_KS
from geocsp.evaluation.metrics import MetricAccumulator, iter_chunks
from geocsp.prior.fusion import fused_log_scores, fused_product64


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
