"""Grids for range and richness maps, from an SDM run or a fine-tuned CSP run (``prior/``).

Default map region: the raster extent (raster-covariate SDMs), else the stored presences'
bounding box padded by 10 % (at least 2°), else (CSP prior runs without a region) the globe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from geocsp.checkpoints import find_artifact
from geocsp.encoders.time import encode_day_of_year
from geocsp.errors import ConfigError
from geocsp.prior import GeoPrior
from geocsp.prior.prior import KIND as PRIOR_KIND
from geocsp.sdm.dates import parse_day_of_year
from geocsp.sdm.model import KIND as SDM_KIND
from geocsp.sdm.model import FittedSDM
from geocsp.sdm.predict import grid_scores, load_presences, species_index
from geocsp.sdm.records import raster_region
from geocsp.sdm.region import parse_bbox
from geocsp.viz.maps import grid_extent, plot_species_map, save_figure

Grid = tuple[np.ndarray, tuple[float, float, float, float], np.ndarray | None, str, str]
"""(grid (H, W), extent, presence points (N, 2) or None, title, colour-bar label)."""


def _doy(date: str | None) -> float:
    """Day of year of ``date`` (NaN for None)."""
    return float("nan") if date is None else float(parse_day_of_year([date], source="date")[0])


def _bbox(region: str | None, rasters: list[str], presences: np.ndarray | None) -> tuple[float, float, float, float] | None:
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
    if not res_deg > 0:
        raise ConfigError(f"--res must be a cell size > 0 degrees, got {res_deg!r}")
    p = Path(run_dir)
    doy = _doy(date)
    missing = "neither an SDM run (model/) nor a fine-tuned CSP run (prior/)"
    directory, kind = find_artifact(p, [SDM_KIND, PRIOR_KIND], missing)
    if kind == SDM_KIND:
        fitted = FittedSDM.load(directory)
        pres = load_presences(p)
        if date is not None and not fitted.model.config.use_time:
            raise ConfigError("date: this model was fitted without dates (no date column)")
        if not richness:
            species_index(fitted.species, str(species))
        pts_all = None if pres is None else pres[["lon", "lat"]].to_numpy(float)
        bbox = _bbox(region, fitted.rasters, pts_all)
        lats, lons, scores = grid_scores(fitted, bbox, res_deg, doy)
        names = fitted.species
        if pres is not None and not richness:
            pres = pres[pres["species"] == str(species)]
        points = None if pres is None else pres[["lon", "lat"]].to_numpy(float)
    else:
        lats, lons, scores, names = _prior_grid(directory, species, region, res_deg, richness, doy)
        points = None
    grid, title, label = _reduce(scores, names, species, richness, threshold)
    return grid, grid_extent(lats, lons), points, title, label


def _prior_grid(prior_dir: Path, species: str | None, region: str | None, res_deg: float,
                richness: bool, doy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """P(y|x) of a GeoPrior on a grid (time input when its encoder takes 2 extra features)."""
    prior = GeoPrior.from_pretrained(prior_dir)
    extra_dim = prior.encoder.config.extra_dim
    bbox = parse_bbox(region).bbox if region else None
    extra = None
    if extra_dim == 2:
        extra = encode_day_of_year(torch.tensor([doy]))[0]
    elif extra_dim:
        raise ConfigError(f"{prior_dir}: the prior takes {extra_dim} extra inputs; cannot map it")
    classes = None if richness else [str(species)]
    lats, lons, probs = prior.predict_grid(res_deg, bbox, classes=classes, extra=extra)
    names = prior.classes if richness else [str(species)]
    return lats, lons, probs, names


def draw_map(
    run_dir: str | Path, out: str | Path, species: str | None = None, region: str | None = None,
    date: str | None = None, res_deg: float = 0.5, richness: bool = False, threshold: float | None = None,
    land_mask: bool = True,
) -> Path:
    """Draw the range map of ``species`` (or the richness map) of a run into an image file.

    Args:
        run_dir: an SDM run (``model/``) or a fine-tuned CSP run (``prior/``).
        out: image file to write (format from its suffix).
        species: species to map (needed unless ``richness``).
        region: ``min_lon,min_lat,max_lon,max_lat`` or None (see module docs).
        date: ``MM-DD`` (or ISO date / day of year) for seasonal models, or None.
        res_deg: grid cell size in degrees.
        richness: sum over species instead of one species.
        threshold: with ``richness``: count species with score >= threshold.
        land_mask: grey out sea cells.

    Returns:
        The written file.

    Raises:
        ConfigError: neither species nor richness; see :func:`range_map`.
        CheckpointError: ``run_dir`` is neither kind of run.
    """
    if not richness and species is None:
        raise ConfigError("map: give a species name or richness")
    grid, extent, points, title, label = range_map(run_dir, species, region, date, res_deg, richness, threshold)
    fig = plot_species_map(grid, extent, points=points, title=title, cbar_label=label, land_mask=land_mask)
    return save_figure(fig, out)
