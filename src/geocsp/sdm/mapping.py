"""Grids for range and richness maps, from an SDM run or a fine-tuned CSP run (``prior/``).

Default map region: the raster extent (raster-covariate SDMs), else the stored presences'
bounding box padded by 10 % (at least 2°), else (CSP prior runs without a region) the globe.
An ``out`` ending in ``.tif`` / ``.tiff`` is a GeoTIFF, ``.nc`` a CF NetCDF (:mod:`geocsp.viz.raster`,
docs/export.md): one band / variable per species (or one richness band), the ocean as nodata,
the run's provenance in its tags / attributes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from geocsp import __version__
from geocsp.checkpoints import find_artifact
from geocsp.encoders.time import encode_day_of_year
from geocsp.errors import ConfigError
from geocsp.landmask import land_cells
from geocsp.prior import GeoPrior
from geocsp.prior.prior import KIND as PRIOR_KIND
from geocsp.prior.prior import check_grid_size, grid_shape
from geocsp.sdm.dates import parse_date_option
from geocsp.sdm.model import KIND as SDM_KIND
from geocsp.sdm.model import FittedSDM
from geocsp.sdm.predict import grid_scores, load_presences, species_index
from geocsp.sdm.records import raster_region
from geocsp.sdm.region import parse_bbox
from geocsp.viz.maps import grid_extent, plot_species_map, save_figure
from geocsp.viz.raster import NODATA, RASTER_SUFFIXES, is_raster, write_grid

Grid = tuple[np.ndarray, tuple[float, float, float, float], np.ndarray | None, str, str]
"""(grid (H, W), extent, presence points (N, 2) or None, title, colour-bar label)."""


def _doy(date: str | None) -> float:
    """Day of year of ``date`` (NaN for None)."""
    return float("nan") if date is None else parse_date_option(date)


def map_bbox(region: str | None, rasters: list[str], presences: np.ndarray | None) -> tuple[float, float, float, float] | None:
    """The map's (min_lon, min_lat, max_lon, max_lat): region, raster extent, padded presences, or None."""
    if region is not None:
        return parse_bbox(region).bbox
    if rasters:
        return raster_region(rasters).bbox
    if presences is not None and len(presences):
        lo, hi = presences.min(axis=0), presences.max(axis=0)
        pad = np.maximum(0.1 * (hi - lo), 2.0)
        return (max(-180.0, lo[0] - pad[0]), max(-90.0, lo[1] - pad[1]),
                min(180.0, hi[0] + pad[0]), min(90.0, hi[1] + pad[1]))
    return None


def _reduce(scores: np.ndarray, species: list[str], name: str | None, richness: bool,
            threshold: float | None) -> tuple[np.ndarray, str, str]:
    """(H, W, Q) -> (H, W) map, title, colour-bar label."""
    if richness:
        if threshold is not None:
            return (scores >= threshold).sum(axis=2).astype(float), "species richness", f"species with score >= {threshold:g}"
        return scores.sum(axis=2), "species richness", "sum of predicted suitability"
    j = species_index(species, str(name))
    return scores[:, :, j], str(name), "predicted suitability"


def range_map(
    run_dir: str | Path, species: str | None, region: str | None, date: str | None, res_deg: float,
    richness: bool = False, threshold: float | None = None,
) -> Grid:
    """Everything a range map needs.

    Args:
        run_dir: an SDM run (``model/``) or a fine-tuned CSP run (``prior/``).
        species: species to map (ignored with ``richness``).
        region: ``min_lon,min_lat,max_lon,max_lat`` or None (see module docs).
        date: ``MM-DD`` (or ISO date / day of year) for seasonal models, or None.
        res_deg: grid cell size in degrees.
        richness: sum over species instead of one species.
        threshold: with ``richness``: count species with score >= threshold.

    Returns:
        (grid (H, W) row 0 north, extent (lon_min, lon_max, lat_min, lat_max), presence
        points (N, 2) or None, title, colour-bar label).

    Raises:
        CheckpointError: ``run_dir`` is neither kind of run.
        ConfigError: unknown species, table-covariate model, bad region, ``res_deg <= 0``.
    """
    lats, lons, scores, names, points, _, _ = run_grid_scores(run_dir, [str(species)], region, date, res_deg,
                                                              richness)
    grid, title, label = _reduce(scores, names, species, richness, threshold)
    return grid, grid_extent(lats, lons), points, title, label


Scores = tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray | None, Path, str]
"""(lats (H,), lons (W,), scores (H, W, K), K names, presence points (N, 2) or None, artifact dir, kind)."""


def run_grid_scores(run_dir: str | Path, species: Sequence[str], region: str | None, date: str | None,
                    res_deg: float, richness: bool) -> Scores:
    """Scores of ``species`` (every species with ``richness``) at the map's cell centres.

    Returns:
        ``(lats (H,), lons (W,), scores (H, W, S), names, points, artifact dir, kind)``:
        cell centres in degrees, the scores of the S mapped classes, their names, the run's
        presences (or None), and what was read.
    """
    if not res_deg > 0:
        raise ConfigError(f"--res must be a cell size > 0 degrees, got {res_deg!r}")
    p = Path(run_dir)
    doy = _doy(date)
    missing = "neither an SDM run (model/) nor a fine-tuned CSP run (prior/)"
    directory, kind = find_artifact(p, [SDM_KIND, PRIOR_KIND], missing)
    bbox = parse_bbox(region).bbox if region else None
    if kind == SDM_KIND:
        fitted = FittedSDM.load(directory)
        pres = load_presences(p)
        if date is not None and (fitted.model is None or not fitted.model.config.use_time):
            raise ConfigError("date: this model was fitted without dates (no date column)")
        if not richness:
            for name in species:
                species_index(fitted.species, name)
        pts_all = None if pres is None else pres[["lon", "lat"]].to_numpy(float)
        bbox = map_bbox(region, fitted.rasters, pts_all)
        with _grid_memory(res_deg, bbox):
            lats, lons, scores = grid_scores(fitted, bbox, res_deg, doy)
        names = fitted.species
        if pres is not None and not richness:
            pres = pres[pres["species"].isin(list(species))]
        points = None if pres is None else pres[["lon", "lat"]].to_numpy(float)
    else:
        lats, lons, scores, names = _prior_grid(directory, species, bbox, res_deg, richness, doy)
        points = None
    return lats, lons, scores, names, points, directory, kind


@contextlib.contextmanager
def _grid_memory(res_deg: float, bbox: tuple[float, float, float, float] | None) -> Iterator[None]:
    """Refuse a grid too large to exist, and name ``--res`` when its arrays cannot be allocated.

    Raises:
        ConfigError: over :data:`~geocsp.prior.prior.MAX_GRID_CELLS` cells (before anything is
            computed), or numpy's ``MemoryError`` / torch's allocation failure in the block.
    """
    check_grid_size(res_deg, bbox, "--res")
    try:
        yield
    except MemoryError:
        raise _grid_too_large(res_deg, bbox) from None
    except RuntimeError as e:  # torch's CPU allocator: "DefaultCPUAllocator: can't allocate memory"
        if "allocat" not in str(e):
            raise
        raise _grid_too_large(res_deg, bbox) from None


def _grid_too_large(res_deg: float, bbox: tuple[float, float, float, float] | None) -> ConfigError:
    """The message for a map grid whose arrays could not be allocated: the cells, and what to change."""
    h, w, region = grid_shape(res_deg, bbox)
    return ConfigError(f"--res {res_deg:g}: the map grid ({h:,} x {w:,} cells over {region}) does not "
                       "fit in memory; expected a larger --res or a smaller --region")


def _prior_grid(prior_dir: Path, species: Sequence[str], bbox: tuple[float, float, float, float] | None, res_deg: float,
                richness: bool, doy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """P(y|x) of a GeoPrior on a grid (time input when its encoder takes 2 extra features)."""
    prior = GeoPrior.from_pretrained(prior_dir)
    extra_dim = prior.encoder.config.extra_dim
    extra = None
    if extra_dim == 2:
        extra = encode_day_of_year(torch.tensor([doy]))[0]
    elif extra_dim:
        raise ConfigError(f"{prior_dir}: the prior takes {extra_dim} extra inputs; cannot map it")
    classes = None if richness else list(species)
    with _grid_memory(res_deg, bbox):
        lats, lons, probs = prior.predict_grid(res_deg, bbox, classes=classes, extra=extra)
    names = prior.classes if richness else list(species)
    return lats, lons, probs, names


def write_map_raster(
    run_dir: str | Path, out: str | Path, species: Sequence[str], region: str | None = None,
    date: str | None = None, res_deg: float = 0.5, richness: bool = False, threshold: float | None = None,
    land_mask: bool = True,
) -> Path:
    """Write the range map of ``species`` (one band each) or the richness map as a GeoTIFF or NetCDF.

    Args:
        run_dir: an SDM run (``model/``) or a fine-tuned CSP run (``prior/``).
        out: the ``.tif`` / ``.tiff`` (GeoTIFF) or ``.nc`` (CF NetCDF) file to write
            (EPSG:4326, float32; one band / variable per species).
        species: species to map, one band each (ignored with ``richness``).
        region: ``min_lon,min_lat,max_lon,max_lat`` or None (see module docs).
        date: ``MM-DD`` (or ISO date / day of year) for seasonal models, or None.
        res_deg: grid cell size in degrees.
        richness: one band, the sum over species (or the count above ``threshold``).
        threshold: with ``richness``: count species with score >= threshold.
        land_mask: write ocean cells as :data:`~geocsp.viz.raster.NODATA`.

    Returns:
        The written file.

    Raises:
        ConfigError: see :func:`range_map`.
        CheckpointError: ``run_dir`` is neither kind of run.
        MissingDependencyError: rasterio is not installed (GeoTIFF).
    """
    lats, lons, scores, names, _, directory, kind = run_grid_scores(run_dir, species, region, date, res_deg, richness)
    if richness:
        bands = _reduce(scores, names, None, True, threshold)[0][:, :, None]
        band_names = ["species richness"]
    else:
        bands = np.stack([scores[:, :, species_index(names, s)] for s in species], axis=2)
        band_names = list(species)
    mask = land_cells(bands.shape, grid_extent(lats, lons)) if land_mask else None
    tags = {"geocsp_version": __version__, "run": Path(run_dir).resolve(), "artifact": directory.resolve(),
            "kind": kind, "bands": json.dumps(band_names), "richness": richness, "threshold": threshold,
            "date": date, "region": region, "res_deg": res_deg, "land_mask": land_mask, "nodata": NODATA}
    return write_grid(out, bands, lons, lats, res_deg, band_names, mask=mask, tags=tags)


def _check_suffix(out: str | Path) -> None:
    """Refuse an ``--out`` that is neither a raster (GeoTIFF, NetCDF) nor an image matplotlib writes."""
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(out).suffix.lower()
    images = sorted(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes())
    if suffix and suffix not in RASTER_SUFFIXES and suffix not in images:
        raise ConfigError(f"--out {out}: unsupported suffix '{suffix}'; expected {'/'.join(RASTER_SUFFIXES)} "
                          f"(GeoTIFF / NetCDF) or an image ({', '.join(images)})")


def draw_map(
    run_dir: str | Path, out: str | Path, species: str | Sequence[str] | None = None, region: str | None = None,
    date: str | None = None, res_deg: float = 0.5, richness: bool = False, threshold: float | None = None,
    land_mask: bool = True,
) -> Path:
    """Draw the range map of ``species`` (or the richness map) of a run into an image or GeoTIFF file.

    Args:
        run_dir: an SDM run (``model/``) or a fine-tuned CSP run (``prior/``).
        out: image file to write (format from its suffix); ``.tif`` / ``.tiff`` / ``.nc``
            writes a GeoTIFF / NetCDF (:func:`write_map_raster`).
        species: species to map (needed unless ``richness``); several only for a GeoTIFF.
        region: ``min_lon,min_lat,max_lon,max_lat`` or None (see module docs).
        date: ``MM-DD`` (or ISO date / day of year) for seasonal models, or None.
        res_deg: grid cell size in degrees.
        richness: sum over species instead of one species.
        threshold: with ``richness``: count species with score >= threshold.
        land_mask: grey out sea cells.

    Returns:
        The written file.

    Raises:
        ConfigError: neither species nor richness, several species for an image, an
            unsupported ``out`` suffix; see :func:`range_map`.
        CheckpointError: ``run_dir`` is neither kind of run.
    """
    names = [species] if isinstance(species, str) else list(species or [])
    _check_suffix(out)
    if not richness and not names:
        raise ConfigError("map: give a species name or richness")
    if is_raster(out):
        return write_map_raster(run_dir, out, names, region, date, res_deg, richness, threshold, land_mask)
    if not richness and len(names) > 1:
        raise ConfigError(f"--out {out}: an image shows one --species, got {len(names)}; write a .tif or .nc for one band each")
    one = names[0] if names else None
    grid, extent, points, title, label = range_map(run_dir, one, region, date, res_deg, richness, threshold)
    fig = plot_species_map(grid, extent, points=points, title=title, cbar_label=label, land_mask=land_mask)
    return save_figure(fig, out)
