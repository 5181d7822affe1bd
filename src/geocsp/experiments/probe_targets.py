"""Real targets for probing frozen location embeddings (``geocsp bench probe``, docs/probe.md).

Each target is a :class:`ProbeTarget`: sampled (lon, lat) points and a label per point.
Builders are registered in :data:`TARGETS` and called as ``build(n, seed, reference)``, where
``reference`` is a directory laid out like ``shared/data`` (holding ``reference_geo/``) or
None; a builder whose file is missing raises :class:`~geocsp.errors.MissingFileError`, which
the benchmark reports as a skipped target.

* ``koppen`` -- Köppen–Geiger climate class (Kottek et al. 2006, 30 classes) of a 0.5° land
  cell, from the bundled ``geocsp/data/probe_data/koppen_geiger_0p5deg.npz`` (BSD-2, kgc
  package); cells drawn with probability ∝ cos(lat) (uniform in area), no repeats.
* ``land`` -- land vs ocean (:func:`geocsp.landmask.is_land`) at points uniform on the sphere.
* ``precip`` -- log(1 + annual precipitation) of the 1° NOAA CFSv2 grid (vega-datasets, 2016,
  lat 87…-81) at points uniform on the sphere in that band; read from ``reference``.
* ``country`` -- Natural Earth country (177 polygons) at points uniform on the sphere that fall
  inside one; read from ``reference``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geocsp._registry import Registry
from geocsp.data.samplers.location import sphere_uniform
from geocsp.data.tables import open_table
from geocsp.errors import ConfigError, DatasetError, MissingFileError
from geocsp.landmask import is_land

KOPPEN_FILE = "koppen_geiger_0p5deg.npz"
"""Bundled Köppen–Geiger grid: ``cls`` (360, 720) uint8 class index (255 = not land, row 0 =
89.75°N, column 0 = 179.75°W) and ``classes`` (30,) class names."""
PRECIP_FILE = "reference_geo/vega_annual-precip_1deg.json"
COUNTRY_FILE = "reference_geo/naturalearth_lowres_countries.geojson"
NO_CLASS = 255


@dataclass(frozen=True, eq=False)
class ProbeTarget:
    """Points and labels of one probe target.

    Attributes:
        name: the target's registry name.
        task: ``"classification"`` or ``"regression"``.
        lonlat: (N, 2) float64 (lon, lat) degrees.
        y: (N,) int64 class index (classification) or float64 value (regression).
        classes: class names (classification), empty for regression.
        source: where the labels come from (file, licence).
    """

    name: str
    task: str
    lonlat: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    source: str


TargetBuilder = Callable[[int, int, Path | None], ProbeTarget]
TARGETS: Registry[TargetBuilder] = Registry("probe target")
"""Registry of probe targets: ``koppen``, ``land``, ``precip``, ``country``."""


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _reference_file(reference: Path | None, rel: str) -> Path:
    if reference is None:
        raise MissingFileError(f"{rel}: needs --reference DIR (a directory holding {rel})")
    path = Path(reference) / rel
    if not path.is_file():
        raise MissingFileError(f"{path}: not found (expected {rel} under --reference)")
    return path


def koppen_grid() -> tuple[np.ndarray, tuple[str, ...]]:
    """The bundled Köppen–Geiger grid.

    Returns:
        ((360, 720) uint8 class index, 255 where no land cell; class names).

    Raises:
        MissingFileError: when the bundled file is missing (a broken install).
    """
    ref = resources.files("geocsp.data").joinpath("probe_data", KOPPEN_FILE)
    if not ref.is_file():
        raise MissingFileError(f"{ref}: bundled Köppen–Geiger file missing; reinstall geocsp")
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        return z["cls"], tuple(str(c) for c in z["classes"])


def koppen_grid_from_csv(path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Build the Köppen–Geiger grid from the kgc CSV (``Lat, Lon, Cls``; how the bundle is made).

    Args:
        path: ``koppen_geiger_0p5deg.csv.gz`` (0.5° cell centres).

    Returns:
        ((360, 720) uint8 class index, 255 where no cell is listed; sorted class names).

    Raises:
        DatasetError: when a row is not on the 0.5° cell-centre grid.
    """
    df = open_table(path, text_columns=None)
    classes = tuple(sorted(df["Cls"].astype(str).unique()))
    row = (89.75 - df["Lat"].to_numpy(np.float64)) / 0.5
    col = (df["Lon"].to_numpy(np.float64) + 179.75) / 0.5
    ok = (np.abs(row - np.round(row)) < 1e-6) & (np.abs(col - np.round(col)) < 1e-6)
    if not ok.all():
        raise DatasetError(f"{path}:row {int(np.flatnonzero(~ok)[0]) + 2}: expected 0.5° cell centres")
    grid = np.full((360, 720), NO_CLASS, dtype=np.uint8)
    lookup = {c: i for i, c in enumerate(classes)}
    grid[np.round(row).astype(int), np.round(col).astype(int)] = [lookup[c] for c in df["Cls"].astype(str)]
    return grid, classes


def _area_weighted_cells(mask: np.ndarray, lats: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n,) flat indices of True cells of ``mask`` drawn ∝ cos(lat) without replacement."""
    idx = np.flatnonzero(mask)
    if n > idx.size:
        raise ConfigError(f"--n: {n} points requested, the grid has {idx.size} cells")
    w = np.cos(np.radians(lats[idx // mask.shape[1]]))
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False, p=w / w.sum()))


@TARGETS.register("koppen", description="Köppen–Geiger climate class of 0.5° land cells (30 classes; accuracy).")
def koppen_target(n: int, seed: int, reference: Path | None = None) -> ProbeTarget:
    """Köppen–Geiger class at ``n`` land-cell centres drawn uniformly in area.

    Args:
        n: number of points.
        seed: sampling seed.
        reference: unused (the grid is bundled).

    Returns:
        The classification target.
    """
    grid, classes = koppen_grid()
    lats, lons = 89.75 - 0.5 * np.arange(360), -179.75 + 0.5 * np.arange(720)
    cells = _area_weighted_cells(grid != NO_CLASS, lats, n, seed)
    r, c = np.divmod(cells, grid.shape[1])
    lonlat = np.stack([lons[c], lats[r]], axis=1)
    return ProbeTarget("koppen", "classification", lonlat, grid[r, c].astype(np.int64), classes,
                       "Kottek et al. 2006 via kgc 1.0.0.2 (BSD-2), bundled")


@TARGETS.register("land", description="Land vs ocean at points uniform on the sphere (GLOBE 1 km; accuracy).")
def land_target(n: int, seed: int, reference: Path | None = None) -> ProbeTarget:
    """Land (1) or ocean (0) at ``n`` points uniform on the sphere (:mod:`geocsp.landmask`).

    Args:
        n: number of points.
        seed: sampling seed.
        reference: unused.

    Returns:
        The classification target.
    """
    lonlat = sphere_uniform(n, _generator(seed)).numpy()
    return ProbeTarget("land", "classification", lonlat, is_land(lonlat).astype(np.int64),
                       ("ocean", "land"), "geocsp.landmask (global-land-mask, GLOBE 1 km)")


@TARGETS.register("precip", description="log(1 + annual precipitation), 1° NOAA CFSv2 grid, lat 87…-81 (R²).")
def precip_target(n: int, seed: int, reference: Path | None = None) -> ProbeTarget:
    """log(1 + annual precipitation) of the 1° cell under ``n`` points uniform in its lat band.

    Args:
        n: number of points.
        seed: sampling seed.
        reference: directory holding ``reference_geo/vega_annual-precip_1deg.json``.

    Returns:
        The regression target.

    Raises:
        MissingFileError: when the file is absent.
        DatasetError: when the file is not the expected grid.
    """
    path = _reference_file(reference, PRECIP_FILE)
    d = json.loads(path.read_text())
    try:
        w, h = int(d["width"]), int(d["height"])
        lon0, lat0 = (float(v) for v in d["translate"])
        grid = np.asarray(d["values"], dtype=np.float64).reshape(h, w)
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{path}: expected width, height, translate and width*height values ({e})") from None
    lonlat = sphere_uniform(n, _generator(seed), (lon0, lat0 - h, lon0 + w, lat0)).numpy()
    r = np.clip((lat0 - lonlat[:, 1]).astype(np.int64), 0, h - 1)
    c = np.clip((lonlat[:, 0] - lon0).astype(np.int64), 0, w - 1)
    return ProbeTarget("precip", "regression", lonlat, np.log1p(grid[r, c]), (),
                       "NOAA CFSv2 2016 via vega-datasets 3.2.1 (public domain), 1° grid")


def _rings(geometry: dict[str, Any]) -> list[np.ndarray]:
    """Every ring (outer and holes) of a GeoJSON Polygon / MultiPolygon as (k, 2) arrays."""
    coords = geometry["coordinates"]
    polys = [coords] if geometry["type"] == "Polygon" else coords
    return [np.asarray(ring, dtype=np.float64)[:, :2] for poly in polys for ring in poly]


def in_polygon(lonlat: np.ndarray, rings: list[np.ndarray]) -> np.ndarray:
    """(N,) bool even-odd point-in-polygon test of lon/lat points (holes are rings too).

    Args:
        lonlat: (N, 2) degrees.
        rings: (k, 2) lon/lat rings of one polygon set (planar test in degrees).

    Returns:
        (N,) True where a point is inside an odd number of rings.
    """
    from matplotlib.path import Path as MplPath

    inside = np.zeros(len(lonlat), dtype=bool)
    for ring in rings:
        lo, hi = ring.min(axis=0), ring.max(axis=0)
        cand = np.flatnonzero(np.all((lonlat >= lo) & (lonlat <= hi), axis=1))
        if cand.size:
            inside[cand] ^= MplPath(ring).contains_points(lonlat[cand])
    return inside


@TARGETS.register("country", description="Natural Earth country (177 polygons) of points on land (accuracy).")
def country_target(n: int, seed: int, reference: Path | None = None) -> ProbeTarget:
    """Country of ``n`` points uniform on the sphere that fall inside a Natural Earth polygon.

    Args:
        n: number of points.
        seed: sampling seed.
        reference: directory holding ``reference_geo/naturalearth_lowres_countries.geojson``.

    Returns:
        The classification target (classes: every country name, in file order).

    Raises:
        MissingFileError: when the file is absent.
        DatasetError: when it is not a GeoJSON FeatureCollection of named polygons.
    """
    path = _reference_file(reference, COUNTRY_FILE)
    try:
        feats = json.loads(path.read_text())["features"]
        names = tuple(str(f["properties"]["name"]) for f in feats)
        rings = [_rings(f["geometry"]) for f in feats]
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise DatasetError(f"{path}: expected a FeatureCollection of named (Multi)Polygons ({e})") from None
    gen, lonlat_parts, y_parts, have = _generator(seed), [], [], 0
    while have < n:  # about 30 % of the sphere is inside a country
        cand = sphere_uniform(max(4 * (n - have), 1024), gen).numpy()
        label = np.full(len(cand), -1, dtype=np.int64)
        for k, rk in enumerate(rings):
            label[(label < 0) & in_polygon(cand, rk)] = k
        keep = label >= 0
        lonlat_parts.append(cand[keep])
        y_parts.append(label[keep])
        have += int(keep.sum())
    lonlat, y = np.concatenate(lonlat_parts)[:n], np.concatenate(y_parts)[:n]
    return ProbeTarget("country", "classification", lonlat, y, names,
                       "Natural Earth 1:110m (public domain) via geopandas 0.14.4 naturalearth_lowres")


def build_target(name: str, n: int, seed: int, reference: str | Path | None = None) -> ProbeTarget:
    """Build target ``name`` (see :data:`TARGETS`).

    Args:
        name: a registered target name.
        n: number of points (at least 10).
        seed: sampling seed.
        reference: directory laid out like ``shared/data`` (needed by ``precip``, ``country``).

    Returns:
        The target.

    Raises:
        ConfigError: on an unknown name or ``n < 10``.
        MissingFileError: when the target's file is absent.
    """
    if n < 10:
        raise ConfigError(f"--n: expected at least 10 points, got {n}")
    entry = TARGETS.get(name)
    return entry.obj(int(n), int(seed), Path(reference) if reference is not None else None)
