"""Presence records, background points and their inputs (covariates, day of year).

Rules for imperfect input (documented in ``docs/sdm.md``); each dropped group is reported
as one line in :attr:`Points.notes`, and an input left with nothing usable is refused:

* a missing column -> :class:`DatasetError` listing the available columns;
* a row with an empty/NaN longitude or latitude -> dropped;
* out-of-range or swapped lon/lat -> :class:`CoordinateError` (names the rows; hints a swap);
* a record outside the region -> dropped;
* a covariate that is NaN (empty cell, outside a raster's extent, a nodata cell) -> row dropped;
* a date that does not parse -> :class:`DatasetError` naming the row; an empty date is allowed
  (the time input is then zero);
* a species with fewer than ``min_records`` presences -> dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from geocsp.coords import validate_lonlat
from geocsp.crs import to_lonlat
from geocsp.data.labels import is_missing_text, text_cells
from geocsp.data.samplers import create_location_sampler
from geocsp.data.tables import open_table, point_crs, require_column
from geocsp.errors import ConfigError, DatasetError
from geocsp.sdm.categorical import expand
from geocsp.sdm.covariates import covariate_name, is_lonlat_crs, open_raster, sample_rasters
from geocsp.sdm.dates import parse_day_of_year
from geocsp.sdm.region import Region


def read_records(path: str | Path, *, lon_col: str = "lon", lat_col: str = "lat", crs: str | None = None) -> pd.DataFrame:
    """Read a table, its coordinates in lon/lat degrees.

    Any format :func:`geocsp.data.tables.open_table` reads: CSV (``,`` ``;`` or tab), CSV.gz,
    Parquet, GeoParquet, GeoJSON points.

    Args:
        path: the table.
        lon_col: longitude (x) column.
        lat_col: latitude (y) column.
        crs: CRS of the coordinates (``EPSG:28355``): the lon/lat columns (or a geo file's
            point geometry) are reprojected to degrees; None = already degrees.

    Returns:
        The table; with ``crs``, ``lon_col``/``lat_col`` hold degrees.

    Raises:
        MissingFileError: the file does not exist.
        DatasetError: unreadable or empty table; a coordinate cell that is not a number.
        ConfigError: an unknown CRS (or pyproj missing).
    """
    p = Path(path)
    geo_crs, col_crs = point_crs(p, lon_col, lat_col, crs) if p.is_file() else (None, crs)
    df = open_table(p, sep=None, text_columns=None, crs=geo_crs)
    if col_crs is not None and (lon_col in df.columns) != (lat_col in df.columns):  # a typo: not silently unprojected
        require_columns(df, [lon_col, lat_col], str(p), "lon_col/lat_col")
    if col_crs is not None and lon_col in df.columns and lat_col in df.columns:
        ll = to_lonlat(_numeric(df, lon_col, str(p)), _numeric(df, lat_col, str(p)), col_crs)
        df[lon_col], df[lat_col] = ll[:, 0], ll[:, 1]
    return df


OPTION_FLAGS = {"presence_col": "--presence-col", "covariate_cols": "--covariates", "species_col": "--species-col",
                "date_col": "--date-col", "lon_col/lat_col": "--lon-col/--lat-col", "group_col": "--group-col",
                "site_col": "--site-col"}
"""The command-line flag of each column setting, as error messages name it (docs/sdm.md)."""


def require_columns(df: pd.DataFrame, cols: list[str], source: str, option: str) -> None:
    """Refuse a table lacking one of ``cols``; the message names the flag and lists the file's columns.

    :func:`geocsp.data.tables.require_column` for each column, ``option`` (a config field such
    as ``lon_col/lat_col``) shown as its command-line flag (:data:`OPTION_FLAGS`).
    """
    for c in cols:
        require_column(df, source, c, OPTION_FLAGS.get(option, option))


@dataclass
class Points:
    """Rows of presences (or background / sites) with their model inputs.

    Attributes:
        lonlat: (N, 2) float64 longitude, latitude in degrees.
        covariates: (N, K) float64 raw covariates (K may be 0).
        doy: (N,) float64 day of year, NaN = no date.
        species: (N,) str species names, or None for background points.
        notes: one line per rule applied (rows dropped and why).
    """

    lonlat: np.ndarray
    covariates: np.ndarray
    doy: np.ndarray
    species: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lonlat)

    def take(self, idx: np.ndarray) -> Points:
        """Subset of the rows ``idx`` (notes kept)."""
        sp = None if self.species is None else self.species[idx]
        return replace(self, lonlat=self.lonlat[idx], covariates=self.covariates[idx], doy=self.doy[idx], species=sp)

    def keep(self, mask: np.ndarray, why: str, source: str) -> Points:
        """Drop rows where ``mask`` is False, adding a note; refuse when none remain."""
        n_drop = int((~mask).sum())
        if n_drop == 0:
            return self
        if n_drop == len(mask):
            raise DatasetError(f"{source}: all {len(mask)} rows dropped ({why}); nothing left to use")
        out = self.take(np.flatnonzero(mask))
        out.notes = [*self.notes, f"{source}: dropped {n_drop} of {len(mask)} rows ({why})"]
        return out


@dataclass(frozen=True)
class InputSpec:
    """How to read model inputs from a table.

    Args:
        lon_col: longitude column (degrees).
        lat_col: latitude column (degrees).
        covariate_cols: covariate column names (table covariates).
        rasters: raster paths sampled at the points (raster covariates); exclusive with
            ``covariate_cols``.
        date_col: date column (ISO date, MM-DD or day of year), or None.
        categorical: column -> known levels of one-hot encoded covariates (their
            ``col=level`` columns are in ``covariate_cols``).
        coords_optional: a table without the lon/lat columns is read with NaN coordinates
            (covariate-only models).
    """

    lon_col: str = "lon"
    lat_col: str = "lat"
    covariate_cols: tuple[str, ...] = ()
    rasters: tuple[str, ...] = ()
    date_col: str | None = None
    categorical: tuple[tuple[str, tuple[str, ...]], ...] = ()
    coords_optional: bool = False

    def __post_init__(self) -> None:
        if self.covariate_cols and self.rasters:
            raise ConfigError("covariate_cols and rasters are exclusive: use table columns or rasters, not both")

    @property
    def covariate_names(self) -> list[str]:
        """Names of the K covariates, in column order."""
        if self.rasters:
            return [covariate_name(r) for r in self.rasters]
        return list(self.covariate_cols)


def _numeric(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna().to_numpy() & raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{source}:{i}:{col}: not a number: {raw.iloc[i]!r}")
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def table_lonlat(df: pd.DataFrame, spec: InputSpec, source: str) -> np.ndarray:
    """(N, 2) lon/lat degrees of a table's rows (not validated).

    Without the lon/lat columns and with ``spec.coords_optional``, every row is NaN.

    Raises:
        DatasetError: a missing column or a cell that is not a number.
    """
    if spec.coords_optional and spec.lon_col not in df.columns and spec.lat_col not in df.columns:
        return np.full((len(df), 2), np.nan)
    require_columns(df, [spec.lon_col, spec.lat_col], source, "lon_col/lat_col")
    return np.stack([_numeric(df, spec.lon_col, source), _numeric(df, spec.lat_col, source)], axis=1)


def points_from_table(
    df: pd.DataFrame, spec: InputSpec, source: str, species_col: str | None = None, region: Region | None = None
) -> Points:
    """Read coordinates, covariates, dates (and species) from a table, applying the rules.

    Args:
        df: the table.
        spec: column names / rasters.
        source: file name used in messages.
        species_col: species column, or None (background / sites).
        region: records outside it are dropped; None keeps all.

    Returns:
        The usable rows.

    Raises:
        DatasetError, CoordinateError: see the module rules.
    """
    if spec.categorical:
        df = expand(df, {c: list(lv) for c, lv in spec.categorical}, source)[0]
    ll = table_lonlat(df, spec, source)
    require_columns(df, list(spec.covariate_cols), source, "covariate_cols")
    if species_col is not None:
        require_columns(df, [species_col], source, "species_col")
    if spec.date_col is not None:
        require_columns(df, [spec.date_col], source, "date_col")
    doy = parse_day_of_year(df[spec.date_col], source=f"{source}:{spec.date_col}") if spec.date_col else np.full(len(df), np.nan)
    cov = np.stack([_numeric(df, c, source) for c in spec.covariate_cols], axis=1) if spec.covariate_cols else np.zeros((len(df), 0))
    sp = None if species_col is None else text_cells(df[species_col]).to_numpy()
    pts = Points(ll, cov, doy, sp)
    no_coords = bool(np.isnan(ll).all()) and spec.coords_optional
    if not no_coords:
        pts = pts.keep(~np.isnan(ll).any(axis=1), "empty or NaN longitude/latitude", source)
    if pts.species is not None:
        pts = pts.keep(~is_missing_text(pd.Series(pts.species)), "empty species, or NA / nan / null as text", source)
    if no_coords:
        if region is not None or spec.rasters:
            raise DatasetError(f"{source}: no '{spec.lon_col}'/'{spec.lat_col}' columns, needed by region or rasters")
        return pts.keep(np.isfinite(pts.covariates).all(axis=1), "missing covariate value", source)
    pts.lonlat = validate_lonlat(pts.lonlat, source=source)
    if region is not None:
        pts = pts.keep(region.contains(pts.lonlat), f"outside {region.name}", source)
    if spec.rasters:
        pts = attach_rasters(pts, spec.rasters)
    return pts.keep(np.isfinite(pts.covariates).all(axis=1), "missing covariate value, outside a raster or nodata", source)


def attach_rasters(pts: Points, rasters: tuple[str, ...] | list[str]) -> Points:
    """Set ``pts.covariates`` to the rasters sampled at the points (NaN outside/nodata)."""
    values, _ = sample_rasters(list(rasters), pts.lonlat)
    return replace(pts, covariates=values)


def drop_rare_species(pts: Points, min_records: int, source: str) -> Points:
    """Drop species with fewer than ``min_records`` presences (rule; one note line).

    Raises:
        DatasetError: when no species is left.
    """
    assert pts.species is not None
    names, counts = np.unique(pts.species, return_counts=True)
    rare = names[counts < min_records]
    if len(rare) == 0:
        return pts
    if len(rare) == len(names):
        raise DatasetError(
            f"{source}: every species has fewer than {min_records} records; lower min_records (now {min_records})"
        )
    out = pts.keep(~np.isin(pts.species, rare), f"{len(rare)} species with < {min_records} records, e.g. '{rare[0]}'", source)
    return out


def sample_background(
    n: int,
    region: Region,
    rasters: tuple[str, ...] | list[str] = (),
    sampler: str = "land",
    seed: int = 0,
) -> Points:
    """Background points uniform (equal area) on land within ``region``, with covariates.

    Points where a raster is nodata or outside its extent are rejected and redrawn.

    Args:
        n: number of points.
        region: bbox (+ polygons) to sample in.
        rasters: rasters to sample at the points.
        sampler: ``land`` (default) or ``sphere`` (land and sea) location sampler.
        seed: random seed.

    Returns:
        n background :class:`Points` (no dates, species None).

    Raises:
        ConfigError: when n < 1, or fewer than n valid points are found in 20 rounds.
    """
    if n < 1:
        raise ConfigError(f"background sample size must be >= 1 points, got {n}")

    def mask(ll: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(region.contains(ll.double().numpy()))

    smp = create_location_sampler(sampler, mask_fn=mask, bbox=tuple(region.bbox))
    gen = torch.Generator().manual_seed(int(seed))
    got: list[Points] = []
    have = 0
    for _ in range(20):
        if have >= n:
            break
        draw = max(64, 2 * (n - have))
        ll = smp.sample(draw, gen).double().numpy()
        pts = Points(ll, np.zeros((draw, 0)), np.full(draw, np.nan))
        if rasters:
            pts = attach_rasters(pts, rasters)
            pts = pts.take(np.flatnonzero(np.isfinite(pts.covariates).all(axis=1)))
        got.append(pts)
        have += len(pts)
    if have < n:
        raise ConfigError(f"background: found only {have} of {n} points on valid raster cells inside {region.name}")
    return concat_points(got).take(np.arange(n))


def concat_points(parts: list[Points]) -> Points:
    """Row-wise concatenation (species kept only when every part has them)."""
    sp = None if any(p.species is None for p in parts) else np.concatenate([p.species for p in parts])
    return Points(
        np.concatenate([p.lonlat for p in parts]),
        np.concatenate([p.covariates for p in parts]),
        np.concatenate([p.doy for p in parts]),
        sp,
        [n for p in parts for n in p.notes],
    )


def raster_region(rasters: tuple[str, ...] | list[str]) -> Region:
    """The intersection of the rasters' extents as a lon/lat Region (EPSG:4326 rasters).

    Raises:
        ConfigError: for a projected raster (give a region explicitly) or disjoint extents.
    """
    boxes = []
    for r in rasters:
        with open_raster(r) as src:
            if src.crs is None or not is_lonlat_crs(src.crs):
                raise ConfigError(f"{r}: raster is not in EPSG:4326; give a region min_lon,min_lat,max_lon,max_lat")
            b = src.bounds
            boxes.append((b.left, b.bottom, b.right, b.top))
    a = np.array(boxes)
    box = (max(-180.0, a[:, 0].max()), max(-90.0, a[:, 1].max()), min(180.0, a[:, 2].min()), min(90.0, a[:, 3].min()))
    return Region(box, name="the raster extent")
