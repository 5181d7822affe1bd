"""The evaluation protocol of spec §6: image-only, location-only and fused metrics.

Scores are processed in row chunks on a device; metrics accumulate exactly in a
:class:`~geocsp.evaluation.metrics.MetricAccumulator`, whose state can be reduced across
ranks through the ``reduce`` hook of :func:`evaluate_scores`. :func:`evaluate_fused` reports
any number of named fusions (e.g. the paper's and a calibrated one, docs/fusion.md).

One pass per chunk: each row block's image, prior and fused scores are ranked and summed
while the block is in cache (:class:`~geocsp.evaluation.rowstats.RowStats`); the β = 1
product is formed block by block in a reused float64 buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from geocsp.errors import ConfigError
from geocsp.evaluation.functional import DEFAULT_KS, check_scores_labels
from geocsp.evaluation.metrics import MetricAccumulator, iter_chunks
from geocsp.evaluation.rowstats import RowBlock, RowStats, Workspace, row_blocks, serial
from geocsp.prior.fusion import Fusion


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
    return evaluate_fused(
        img_probs, loc_probs, labels, has_location, {"fused": Fusion("paper", beta)},
        batch_size=batch_size, device=device, n_bins=n_bins, reduce=reduce,
    )


def fused_block(fusion: Fusion, img: Tensor, loc: Tensor, has: Tensor, work: Workspace) -> Tensor:
    """One row block's fused scores: the float64 product for ε = 0, β = 1, else log-scores.

    The product ``P(y|I) · P(y|x)`` is exact in float64 (``prior.fusion.fused_product64``)
    and is written into ``work``'s buffer; every other fusion gives its float64 log-scores.

    Args:
        fusion: the fusion.
        img: (b, Q) P(y|I).
        loc: (b, Q) P(y|x) (ignored where ``has`` is False).
        has: (b,) bool.
        work: scratch buffers of the pass.

    Returns:
        (b, Q) float64 scores (product) or log-scores; ``is_product(fusion)`` says which.
    """
    if not is_product(fusion):
        return fusion.log_scores(img, loc, has)
    b, q = img.shape
    out = work.get("fused", b, q, torch.float64, img.device).copy_(loc)
    if not bool(has.all()):
        out[~has] = 1.0
    return out.mul_(work.get("fused-img", b, q, torch.float64, img.device).copy_(img))  # same-dtype mul


def is_product(fusion: Fusion) -> bool:
    """Whether ``fusion`` is the plain product (ε = 0, β = 1), scored without logarithms."""
    return fusion.eps == 0.0 and fusion.beta == 1.0


def update_fused(acc: MetricAccumulator, fusion: Fusion, img: Tensor, loc: Tensor,
                 has: Tensor, labels: Tensor) -> None:
    """Add one chunk's fused scores to ``acc``, one row block at a time (see :func:`fused_block`).

    Args:
        acc: the accumulator of this fusion.
        fusion: the fusion.
        img: (B, Q) P(y|I).
        loc: (B, Q) P(y|x) (ignored where ``has`` is False).
        has: (B,) bool.
        labels: (B,) true classes.
    """
    labels = labels.to(device=img.device, dtype=torch.long)
    check_scores_labels(img, labels)
    stats, work, blocks = RowStats(not is_product(fusion)), Workspace(), row_blocks(img.shape[0], img.shape[1], img.device)
    with serial(blocks, img.device):
        for lo, hi in blocks:
            block = RowBlock(labels[lo:hi], img.shape[1], work)
            stats.add(fused_block(fusion, img[lo:hi], loc[lo:hi], has[lo:hi], work), block)
    acc.add_rows(*stats.finish(acc.eps))


def evaluate_fused(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    fusions: Mapping[str, Fusion],
    batch_size: int = 4096,
    device: torch.device | str | None = None,
    n_bins: int = 15,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Image-only, location-only and one metric block per named fusion, in one pass.

    E.g. ``fusions={"fused-paper": Fusion("paper"), "fused-calibrated": fit.fusion}``.
    Arguments are those of :func:`evaluate_scores`, with ``fusions`` instead of ``beta``.

    Args:
        img_probs: (N, Q) P(y|I): tensor, NumPy array, memmap or SciPy sparse matrix.
        loc_probs: (N, Q) P(y|x) (ignored, may be NaN, where ``has_location`` is False).
        labels: (N,) int true class indices in [0, Q).
        has_location: (N,) bool.
        fusions: block name -> fusion; names other than ``image`` and ``location``.
        batch_size: rows per chunk.
        device: where to compute (default: CPU).
        n_bins: number of ECE bins.
        reduce: optional sum over processes of the stacked (2 + len(fusions), S) states.

    Returns:
        ``{"image": m, "location": m, name: m, ...}`` in the order of ``fusions``; each
        fused block covers all rows, rows without a location using P(y|I) alone.

    Raises:
        ConfigError: on a fusion named ``image`` or ``location``, or ``batch_size < 1``.
        DatasetError: on mismatched shapes or out-of-range labels.
    """
    clash = sorted(set(fusions) & {"image", "location"})
    if clash:
        raise ConfigError(f"fusions: name {clash[0]!r} is reserved; use e.g. 'fused-calibrated'")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    accs = {
        key: MetricAccumulator(DEFAULT_KS, n_bins, device=dev)
        for key in ("image", "location", *fusions)
    }
    work = Workspace()
    for img, loc, lab, has in iter_chunks(
        img_probs, loc_probs, labels, has_location, batch_size, dev
    ):
        check_scores_labels(img, lab)
        every = bool(has.all())
        # the located rows are ranked inside the blocks and picked afterwards; a lone one (or,
        # off the CPU, any subset) is reduced on its own as before, for bit-identical sums
        alone = not every and (dev.type != "cpu" or int(has.sum()) == 1)
        stats = {key: RowStats(key not in ("image", "location") and not is_product(fusions[key]))
                 for key in accs}
        blocks = row_blocks(img.shape[0], img.shape[1], dev)
        with serial(blocks, dev):
            for lo, hi in blocks:
                block = RowBlock(lab[lo:hi], img.shape[1], work)
                i, lp, h = img[lo:hi], loc[lo:hi], has[lo:hi]
                stats["image"].add(i, block)
                if not alone:
                    stats["location"].add(lp, block)
                for name, fusion in fusions.items():
                    stats[name].add(fused_block(fusion, i, lp, h, work), block)
        for key, st in stats.items():
            if key == "location" and alone:
                accs[key].update(loc[has], lab[has])
            elif key == "location" and not every:
                accs[key].add_rows(*(r[has] for r in st.finish(accs[key].eps)))
            else:
                accs[key].add_rows(*st.finish(accs[key].eps))
    if reduce is None:
        return {key: acc.compute() for key, acc in accs.items()}
    states = reduce(torch.stack([acc.state() for acc in accs.values()]))
    return {
        key: MetricAccumulator.from_state(states[i], DEFAULT_KS, n_bins).compute()
        for i, key in enumerate(accs)
    }
