"""Predicting with a fitted SDM: at sites from a table, and on a lon/lat grid for maps.

Site inputs: each covariate the model needs is read from the site table's column of the
same name; when the model was fitted on rasters and the column is absent, the rasters are
sampled at the sites. A missing covariate column (table-covariate model) is refused with one
line naming it; a site with a NaN covariate (empty cell, outside a raster, nodata) is refused
with its row. Dates are optional (no date -> time input zero).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geocsp.coords import validate_lonlat
from geocsp.data.tables import write_table
from geocsp.errors import ConfigError, DatasetError
from geocsp.io import atomic_path
from geocsp.prior.prior import grid_centres
from geocsp.sdm.categorical import expand
from geocsp.sdm.covariates import sample_raster, sample_rasters
from geocsp.sdm.dates import parse_day_of_year
from geocsp.sdm.groups import group_mask, run_groups
from geocsp.sdm.model import FittedSDM
from geocsp.sdm.records import read_records, require_columns

PRESENCES_FILE = "presences.csv"
SCORE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
"""What ``sdm predict`` writes site scores as (by ``--out``'s suffix)."""
"""Run-directory file with the (capped) presence coordinates, for maps."""


def needs_coordinates(fitted: FittedSDM) -> bool:
    """Whether the model reads coordinates (position tower, KDE or rasters), i.e. not covariates only."""
    return fitted.model is None or fitted.model.position is not None or fitted.kde is not None or bool(fitted.rasters)


def site_inputs(
    fitted: FittedSDM, df: pd.DataFrame, source: str, lon_col: str = "lon", lat_col: str = "lat",
    date_col: str | None = None, warnings: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lonlat (N, 2), covariates (N, K) in model order, doy (N,)) for the sites of ``df``.

    Categorical covariates are one-hot encoded with the model's levels (an unseen level:
    all-zero columns and one line appended to ``warnings``). A covariate-only model reads
    sites without lon/lat columns (coordinates NaN).

    Raises:
        DatasetError: missing column or NaN covariate (named); unparsable date.
        CoordinateError: invalid coordinates.
    """
    if not needs_coordinates(fitted) and lon_col not in df.columns and lat_col not in df.columns:
        ll = np.full((len(df), 2), np.nan)
    else:
        require_columns(df, [lon_col, lat_col], source, "lon_col/lat_col")
        raw = df[[lon_col, lat_col]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        ll = validate_lonlat(raw, source=source)
    levels = fitted.options.get("categorical") or {}
    if levels:
        df, lines = expand(df, levels, source, refuse_empty=True)
        if warnings is not None:
            warnings.extend(lines)
    names = list(fitted.standardizer.names)
    cov = np.zeros((len(df), len(names)))
    if names:
        missing = [n for n in names if n not in df.columns]
        if missing and not fitted.rasters:
            raise DatasetError(f"{source}: missing covariate column '{missing[0]}' required by the model")
        for j, name in enumerate(names):
            if name in df.columns:
                cov[:, j] = pd.to_numeric(df[name], errors="coerce").to_numpy(float)
            else:
                cov[:, j] = sample_raster(fitted.rasters[j], ll)
        bad = ~np.isfinite(cov)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DatasetError(
                f"{source}:{r}:{names[c]}: covariate is missing (empty, outside the raster extent or nodata)"
            )
    doy = np.full(len(df), np.nan)
    if date_col is not None:
        require_columns(df, [date_col], source, "date_col")
        doy = parse_day_of_year(df[date_col], source=f"{source}:{date_col}")
    return ll, cov, doy


def predict_table(
    fitted: FittedSDM, df: pd.DataFrame, source: str, *, lon_col: str = "lon", lat_col: str = "lat",
    date_col: str | None = None, site_col: str | None = None, wide: bool = False,
    group_col: str | None = None, warnings: list[str] | None = None,
) -> pd.DataFrame:
    """Scores at the sites of ``df``, long (``site_id, species, score``) or wide.

    Wide output has one column per species. ``site_id`` is ``site_col``'s value or the row number.
    With ``group_col`` each site is scored only for the species of its survey group (the
    run's groups, ``sdm fit --group-col``): long output keeps only those rows, wide output
    leaves the other cells empty.

    Args:
        fitted: the model.
        df: the sites table.
        source: file name used in messages.
        lon_col: longitude column (degrees).
        lat_col: latitude column (degrees).
        date_col: date column, or None.
        site_col: site id column, or None.
        wide: one column per species.
        group_col: the sites' survey-group column, or None.
        warnings: collects one line per categorical column with unseen levels.

    Returns:
        The scores table.

    Raises:
        DatasetError: a missing column or covariate (see :func:`site_inputs`).
        ConfigError: ``group_col`` with a run fitted without groups.
    """
    keep = None
    if group_col is not None:
        groups = run_groups(fitted.options)
        require_columns(df, [group_col], source, "group_col")
        keep = group_mask(df[group_col], fitted.species, groups)
    ll, cov, doy = site_inputs(fitted, df, source, lon_col, lat_col, date_col, warnings)
    scores = fitted.predict(ll, cov, doy)
    if site_col is not None:
        require_columns(df, [site_col], source, "site_col")
    sid = df[site_col].to_numpy() if site_col else np.arange(len(df))
    if wide:
        out = pd.DataFrame(scores if keep is None else np.where(keep, scores, np.nan), columns=fitted.species)
        out.insert(0, "site_id", sid)
        return out
    q = len(fitted.species)
    rows = np.ones(len(df) * q, bool) if keep is None else keep.ravel()
    return pd.DataFrame({"site_id": np.repeat(sid, q)[rows], "species": np.tile(fitted.species, len(df))[rows],
                         "score": scores.ravel()[rows]})


def predict_file(
    run_dir: str | Path, sites: str | Path, out: str | Path, *, lon_col: str = "lon", lat_col: str = "lat",
    date_col: str | None = None, site_col: str | None = None, wide: bool = False,
    crs: str | None = None, group_col: str | None = None, warnings: list[str] | None = None,
) -> int:
    """Score the sites of a table with the SDM of ``run_dir`` and write them as CSV.

    Args:
        run_dir: an SDM run (or its ``model/``).
        sites: CSV/Parquet table of sites.
        out: the table to write (atomically): ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``.
        lon_col: longitude column (degrees).
        lat_col: latitude column (degrees).
        date_col: date column, or None.
        site_col: site id column; None = row number.
        wide: one column per species instead of ``site_id, species, score`` rows.
        crs: CRS of the sites' lon/lat columns (reprojected to degrees), or None.
        group_col: the sites' survey-group column (see :func:`predict_table`), or None.
        warnings: collects one line per categorical column with unseen levels.

    Returns:
        The number of rows written.

    Raises:
        CheckpointError: no SDM at ``run_dir``.
        DatasetError, CoordinateError: see :func:`site_inputs`.
    """
    if not str(out).lower().endswith(SCORE_SUFFIXES):  # before any work (was: CSV text under any name)
        raise ConfigError(f"--out {out}: site scores are a table; expected {', '.join(SCORE_SUFFIXES)} "
                          "(a GeoTIFF is written with --grid)")
    fitted = FittedSDM.load(run_dir)
    df = read_records(sites, lon_col=lon_col, lat_col=lat_col, crs=crs)
    table = predict_table(fitted, df, str(sites), lon_col=lon_col, lat_col=lat_col, date_col=date_col,
                          site_col=site_col, wide=wide, group_col=group_col, warnings=warnings)
    write_table(table, out)
    return len(table)


def species_index(species: list[str], name: str) -> int:
    """Column of ``name``; unknown -> ConfigError listing a few known names."""
    if name not in species:
        shown = ", ".join(species[:5]) + (" ..." if len(species) > 5 else "")
        raise ConfigError(f"--species '{name}': not in the model ({len(species)} species: {shown})")
    return species.index(name)


def grid_scores(
    fitted: FittedSDM, bbox: tuple[float, float, float, float] | None, res_deg: float, doy: float = float("nan")
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores at the centres of a lon/lat grid.

    Args:
        fitted: the model; table-covariate models cannot be mapped.
        bbox: (min_lon, min_lat, max_lon, max_lat) degrees; None = the globe.
        res_deg: cell size in degrees.
        doy: day of year used at every cell (NaN = none).

    Returns:
        lats (H,) north to south, lons (W,), scores (H, W, Q) (NaN where a raster has no data).

    Raises:
        ConfigError: a model fitted on table covariates (no values on a grid).
    """
    if fitted.standardizer.names and not fitted.rasters:
        raise ConfigError(
            "this model uses table covariates, which have no values on a map grid; "
            "fit with rasters or inputs position to draw maps"
        )
    lons, lats = grid_centres(res_deg, bbox)
    lon2, lat2 = np.meshgrid(lons, lats)
    ll = np.stack([lon2.ravel(), lat2.ravel()], axis=1)
    cov = np.zeros((len(ll), 0))
    if fitted.rasters:
        cov = sample_rasters(fitted.rasters, ll)[0]
    ok = np.isfinite(cov).all(axis=1)
    out = np.full((len(ll), len(fitted.species)), np.nan)
    out[ok] = fitted.predict(ll[ok], cov[ok], np.full(int(ok.sum()), doy))
    return lats, lons, out.reshape(len(lats), len(lons), -1)


def save_presences(run_dir: str | Path, lonlat: np.ndarray, species: np.ndarray, cap: int = 20000, seed: int = 0) -> None:
    """Store the presence coordinates (a seeded sample of at most ``cap``) for maps."""
    idx = np.arange(len(lonlat))
    if len(idx) > cap:
        idx = np.sort(np.random.default_rng(seed).choice(idx, cap, replace=False))
    df = pd.DataFrame({"lon": lonlat[idx, 0], "lat": lonlat[idx, 1], "species": species[idx]})
    with atomic_path(Path(run_dir) / PRESENCES_FILE) as tmp:
        df.to_csv(tmp, index=False)


def load_presences(run_dir: str | Path) -> pd.DataFrame | None:
    """The stored presences (lon, lat, species) or None."""
    p = Path(run_dir) / PRESENCES_FILE
    return pd.read_csv(p, keep_default_na=False, dtype={"species": str}) if p.is_file() else None
