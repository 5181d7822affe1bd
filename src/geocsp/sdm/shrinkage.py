"""Choosing the shrinkage toward the KDE by spatial-block CV on the training data only.

``score_s = w_s f_s + (1 - w_s) z_s`` with ``w_s = n_s / (n_s + k)`` (:mod:`geocsp.sdm.kde`).
:func:`select_shrinkage` cuts the training presences and background into K folds of
lon/lat blocks (:func:`geocsp.data.splits.spatial_block_folds`), fits the network and the
KDE on K-1 folds, pools each candidate ``k`` on the held-out fold, and keeps the ``k`` with
the highest mean per-species AUC of held-out presences against held-out background
(:func:`geocsp.sdm.cv.masked_scores`). No presence/absence test site is ever used.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from geocsp.data.splits import spatial_block_folds
from geocsp.sdm.cv import cv_targets, masked_scores
from geocsp.sdm.kde import SHRINK_GRID, SpeciesKDE, shrink
from geocsp.sdm.metrics import summarize
from geocsp.sdm.model import FittedSDM
from geocsp.sdm.records import Points, concat_points

NetFit = Callable[[Points, Points, list[str]], FittedSDM]
"""``fit(train_presences, train_background, species) -> FittedSDM`` (the network)."""


def fold_kde_logits(train: Points, bg: Points, test: Points, species: list[str], bandwidth: str | float) -> np.ndarray:
    """(M, Q) KDE log ratios at ``test``; a species without training presences gets 0."""
    assert train.species is not None
    present = [s for s in species if s in set(train.species.tolist())]
    out = np.zeros((len(test), len(species)))
    if present:
        kde = SpeciesKDE.fit(train.lonlat, train.species, bg.lonlat, bandwidth, present)
        z = kde.log_ratio(test.lonlat)
        for i, s in enumerate(present):
            out[:, species.index(s)] = z[:, i]
    return out


def select_shrinkage(pres: Points, bg: Points, fit_net: NetFit, bandwidth: str | float = "cv", k: int = 3,
                     block_deg: float = 1.0, seed: int = 0, grid: tuple[float, ...] = SHRINK_GRID) -> dict:
    """The ``k`` of the shrinkage weight with the best spatial-block CV AUC.

    Args:
        pres: training presences (species set).
        bg: training background.
        fit_net: fits the network on a fold (see :data:`NetFit`).
        bandwidth: KDE bandwidth rule or km.
        k: number of folds (>= 2).
        block_deg: block size in degrees.
        seed: seed of the block order.
        grid: candidate ``k`` values (``inf`` = the KDE alone, 0 = the network alone).

    Returns:
        ``{"k": best, "cv_mean_auc": {str(k): mean AUC}, "folds": k, "block_deg": ...}``.

    Raises:
        ConfigError: k < 2 or a block size out of range.
    """
    assert pres.species is not None
    species = sorted(set(pres.species.tolist()))
    n = len(pres)
    allpts = concat_points([pres, bg])
    y, counted = cv_targets(pres, len(bg), species)
    pooled = {kk: np.full(y.shape, np.nan) for kk in grid}
    for train, test in spatial_block_folds(allpts.lonlat, block_deg=block_deg, k=k, seed=seed):
        tr_p, tr_b = train[train < n], train[train >= n] - n
        if len(tr_p) == 0 or len(tr_b) == 0 or len(test) == 0:
            continue
        tp, tb, te = pres.take(tr_p), bg.take(tr_b), allpts.take(test)
        assert tp.species is not None
        net = fit_net(tp, tb, species).logits(te.lonlat, te.covariates, te.doy)
        zk = fold_kde_logits(tp, tb, te, species, bandwidth)
        counts = np.array([np.sum(tp.species == s) for s in species], dtype=float)
        for kk in grid:
            pooled[kk][test] = shrink(net, zk, counts, kk)
    means = {kk: summarize(masked_scores(y, sc, counted, species))["mean_auc"] for kk, sc in pooled.items()}
    finite = {kk: v for kk, v in means.items() if math.isfinite(v)}
    best = max(finite, key=lambda kk: finite[kk]) if finite else math.inf
    return {"k": best, "cv_mean_auc": {str(kk): v for kk, v in means.items()}, "folds": int(k),
            "block_deg": float(block_deg)}
