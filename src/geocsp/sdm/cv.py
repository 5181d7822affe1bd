"""Spatial-block cross-validation on presence/background data and presence/absence evaluation.

**Presence/background CV.** Presences and background points are pooled and cut into K
folds of lon/lat blocks (:func:`geocsp.data.splits.spatial_block_folds`), so a test block
never touches a training block. Each scorer is fitted on the training folds and scores
the held-out points; the out-of-fold scores of all K folds are pooled, and for each species
AUC/AP compare its held-out presences (label 1) with the held-out background (label 0);
other species' presences are ignored for that species.

**Presence/absence evaluation.** A PA table lists the species recorded at survey sites
(one row per site and species); a site is a distinct (lon, lat) (or ``site_col`` value) and
every model species not listed at a site is absent there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from geocsp.data.labels import text_cells
from geocsp.data.splits import spatial_block_folds
from geocsp.errors import ConfigError, DatasetError
from geocsp.sdm.baselines import KDEBaseline, LogisticBaseline
from geocsp.sdm.metrics import per_species_scores, summarize
from geocsp.sdm.records import Points, concat_points

Scorer = Callable[[Points, Points, Points, list[str]], np.ndarray]
"""``scorer(train_presences, train_background, test_points, species) -> (M, Q) scores``."""


def kde_scorer(train: Points, bg: Points, test: Points, species: list[str]) -> np.ndarray:
    """KDE on coordinates (baseline): per-species density at the test points."""
    assert train.species is not None
    kde = KDEBaseline().fit(train.lonlat, train.species)
    out = np.zeros((len(test), len(species)))
    for j, s in enumerate(species):
        if s in kde.species:
            out[:, j] = kde.predict(test.lonlat)[:, kde.species.index(s)]
    return out


def logistic_scorer(train: Points, bg: Points, test: Points, species: list[str]) -> np.ndarray:
    """Logistic regression on covariates (baseline)."""
    assert train.species is not None
    if train.covariates.shape[1] == 0:
        raise ConfigError("the logistic baseline needs covariates")
    lr = LogisticBaseline().fit(train.covariates, train.species, bg.covariates)
    pred = lr.predict(test.covariates)
    out = np.zeros((len(test), len(species)))
    for j, s in enumerate(species):
        if s in lr.species:
            out[:, j] = pred[:, lr.species.index(s)]
    return out


def spatial_block_cv(
    pres: Points,
    bg: Points,
    scorers: dict[str, Scorer],
    k: int = 5,
    block_deg: float = 1.0,
    seed: int = 0,
) -> dict[str, dict]:
    """K-fold spatial-block CV of several scorers on the same folds.

    Args:
        pres: presences (species set).
        bg: background points.
        scorers: name -> scorer (see :data:`Scorer`).
        k: number of folds.
        block_deg: block size in degrees.
        seed: seed of the block order.

    Returns:
        ``{name: {"per_species": {...}, "mean_auc", "mean_ap", "n_species_scored", "n_species"}}``
        plus ``"folds": {"k", "block_deg", "test_presences": [...], "test_background": [...]}``.

    Raises:
        ConfigError: on k < 2 or a block size out of range.
    """
    assert pres.species is not None
    species = sorted(set(pres.species.tolist()))
    n = len(pres)
    allpts = concat_points([pres, bg])
    folds = spatial_block_folds(allpts.lonlat, block_deg=block_deg, k=k, seed=seed)
    y, counted = cv_targets(pres, len(bg), species)
    scores = {name: np.full(y.shape, np.nan) for name in scorers}
    for train, test in folds:
        tr_p, tr_b = train[train < n], train[train >= n] - n
        if len(tr_p) == 0 or len(tr_b) == 0 or len(test) == 0:
            continue
        tp, tb = pres.take(tr_p), bg.take(tr_b)
        for name, fn in scorers.items():
            scores[name][test] = fn(tp, tb, allpts.take(test), species)
    out: dict[str, dict] = {}
    for name, sc in scores.items():
        per = masked_scores(y, sc, counted, species)
        out[name] = {**summarize(per), "per_species": per}
    out["folds"] = {
        "k": int(k),
        "block_deg": float(block_deg),
        "test_presences": [int((te < n).sum()) for _, te in folds],
        "test_background": [int((te >= n).sum()) for _, te in folds],
    }
    return out


def cv_targets(pres: Points, n_bg: int, species: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels of presences followed by ``n_bg`` background rows, and which rows count.

    Args:
        pres: presences (species set).
        n_bg: number of background rows after them.
        species: the Q species (columns).

    Returns:
        ((N + n_bg, Q) 0/1 labels, (N + n_bg, Q) bool: a species' own presences and all
        background count for it; other species' presences do not).
    """
    assert pres.species is not None
    n = len(pres)
    y = np.zeros((n + n_bg, len(species)))
    col = {s: j for j, s in enumerate(species)}
    y[np.arange(n), [col[s] for s in pres.species]] = 1.0
    counted = np.zeros_like(y, dtype=bool)
    counted[n:] = True
    counted[y == 1] = True
    return y, counted


def masked_scores(y: np.ndarray, sc: np.ndarray, counted: np.ndarray, species: list[str]) -> dict:
    """Per-species AUC/AP over the rows that count for each species (finite scores only)."""
    out = {}
    for j, s in enumerate(species):
        m = counted[:, j] & np.isfinite(sc[:, j])
        out.update(per_species_scores(y[m, j : j + 1], sc[m, j : j + 1], [s]))
    return out


def pa_sites(
    df: pd.DataFrame, species_col: str, species: list[str], lon_col: str = "lon", lat_col: str = "lat",
    site_col: str | None = None, source: str = "presence/absence table",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Sites and their (S, Q) presence/absence matrix from a long PA table.

    Args:
        df: one row per (site, species) presence; columns lon/lat (+ species, site).
        species_col: species column.
        species: the model's Q species (matrix columns).
        lon_col: longitude column.
        lat_col: latitude column.
        site_col: site id column; default a site is a distinct (lon, lat) to 1e-6 degrees.
        source: file named in messages.

    Returns:
        (sites table: one row per site, first row of each site kept; (S, Q) 0/1 matrix).

    Raises:
        DatasetError: a row without a site (an empty site id, or no lon/lat without ``site_col``).
    """
    key = text_cells(df[site_col]) if site_col else (
        text_cells(df[lon_col].round(6)) + "," + text_cells(df[lat_col].round(6))
    )
    empty = key.eq("").to_numpy() if site_col else df[[lon_col, lat_col]].isna().any(axis=1).to_numpy()
    if empty.any():  # pandas gives such a row code -1, which indexed the last site
        i = int(np.flatnonzero(empty)[0])
        raise DatasetError(f"{source}:{i}:{site_col or lon_col}: a row without a site "
                           f"({'empty site id' if site_col else 'no longitude/latitude'}); expected every row at a site")
    codes, uniq = pd.factorize(key)
    first = np.unique(codes, return_index=True)[1]
    col = {s: j for j, s in enumerate(species)}
    y = np.zeros((len(uniq), len(species)))
    for c, s in zip(codes, text_cells(df[species_col]), strict=True):
        if s in col:
            y[c, col[s]] = 1.0
    return df.iloc[first].reset_index(drop=True), y


def evaluate_pa(y: np.ndarray, scores: np.ndarray, species: list[str]) -> dict:
    """AUC/AP per species on presence/absence sites, with their means.

    Species with no presence (or no absence) at the sites get NaN and are left out of the means.

    Args:
        y: (S, Q) 0/1 presence matrix of the sites.
        scores: (S, Q) predicted scores.
        species: the Q species names.

    Returns:
        ``{"per_species", "mean_auc", "mean_ap", "n_species_scored", "n_species", "n_sites"}``.
    """
    per = per_species_scores(y, scores, species)
    return {**summarize(per), "per_species": per, "n_sites": len(y)}
