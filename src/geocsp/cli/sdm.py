"""``geocsp sdm fit|predict`` and ``geocsp map``: species distribution models (docs/sdm.md).

Each command parses its flags into the library's arguments (``sdm fit``: an
:class:`~geocsp.sdm.SDMFitConfig`), makes one library call and prints the result. Library
errors name config fields (``background.sample``); :func:`flag_names` rewrites them to
the flags that set them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from geocsp.cli.options import overwrite_option
from geocsp.data.tables import refuse_existing
from geocsp.errors import ConfigError
from geocsp.sdm import (
    LOSSES,
    BackgroundConfig,
    EvalConfig,
    FitOptions,
    ModelChoice,
    RecordsConfig,
    SDMFitConfig,
    draw_map,
    fit_run,
    predict_file,
)
from geocsp.sdm.config import INPUTS, SAMPLERS

FLAGS = {
    "records.species_col": "--species-col",
    "records.presence_col": "--presence-col",
    "records.lon_col": "--lon-col",
    "records.lat_col": "--lat-col",
    "records.covariates": "--covariates",
    "records.rasters": "--rasters",
    "records.date_col": "--date-col",
    "records.region": "--region",
    "records.min_records": "--min-records",
    "background.path": "--background",
    "background.sample": "--background-sample",
    "background.sampler": "--background-sampler",
    "model.inputs": "--inputs",
    "model.encoder": "--encoder",
    "model.init": "--init",
    "evaluation.cv_folds": "--cv-folds",
    "evaluation.block_deg": "--block-deg",
    "evaluation.pa": "--pa",
}
"""``sdm fit``: config field path -> the flag that sets it."""

OPTION_FLAGS = {"epochs": "--epochs", "lr": "--lr", "batch_size": "--batch-size"}
"""``sdm fit``: :class:`~geocsp.sdm.FitOptions` field -> flag (its messages start with the field)."""

_FIELD = re.compile(r"\b[a-z]+\.[a-z_]+\b")


def _list(s: str | None) -> tuple[str, ...]:
    """A comma-separated flag value as a tuple (empty items dropped)."""
    return tuple(x.strip() for x in s.split(",") if x.strip()) if s else ()


def flag_names(message: str) -> str:
    """``message`` with config field paths replaced by the ``sdm fit`` flags that set them.

    Args:
        message: a library error message.

    Returns:
        The message in terms of flags.
    """
    head, _, rest = message.partition(" ")
    if head in OPTION_FLAGS:
        message = f"{OPTION_FLAGS[head]} {rest}"
    return _FIELD.sub(lambda m: FLAGS.get(m.group(0), m.group(0)), message)


@contextmanager
def _flags() -> Iterator[None]:
    """Re-raise a ConfigError with its field names as flags."""
    try:
        yield
    except ConfigError as e:
        raise ConfigError(flag_names(str(e))) from None


@click.group("sdm")
def sdm() -> None:
    """Species distribution models from presence-only records."""


@sdm.command("fit")
@click.argument("records", type=click.Path(dir_okay=False))
@click.option("--species-col", default=None, help="Species column (default: one species named after the file).")
@click.option("--lon-col", default="lon", show_default=True)
@click.option("--lat-col", default="lat", show_default=True)
@click.option("--presence-col", default=None, help="0/1 column: rows with 0 are background points.")
@click.option("--background", "background", type=click.Path(dir_okay=False), help="Background table (lon/lat [+ covariates]).")
@click.option("--background-sample", type=int, default=None, help="Sample N background points on land in --region.")
@click.option("--background-sampler", type=click.Choice(list(SAMPLERS)), default="land", show_default=True)
@click.option("--region", default=None, help="min_lon,min_lat,max_lon,max_lat or a .geojson polygon file.")
@click.option("--covariates", default=None, help="Comma-separated covariate columns.")
@click.option("--rasters", default=None, help="Comma-separated raster files sampled at the points.")
@click.option("--inputs", type=click.Choice(list(INPUTS)), default=None,
              help="Towers (default: both with covariates, else position).")
@click.option("--date-col", default=None, help="Date column (YYYY-MM-DD, MM-DD or day of year).")
@click.option("--loss", type=click.Choice(list(LOSSES)), default="full", show_default=True)
@click.option("--init", "init_dir", type=click.Path(file_okay=False), default=None, help="CSP pre-trained encoder dir.")
@click.option("--encoder", default=None, help="Position encoder name (default sphereC+).")
@click.option("--min-records", type=int, default=2, show_default=True, help="Drop species with fewer presences.")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--cv-folds", type=int, default=0, help="K spatial-block CV folds (0 = no CV).")
@click.option("--block-deg", type=float, default=1.0, show_default=True)
@click.option("--pa", "pa_path", type=click.Path(dir_okay=False), default=None, help="Presence/absence sites table.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True)
def fit_cmd(records: str, species_col: str | None, lon_col: str, lat_col: str, presence_col: str | None,
            background: str | None, background_sample: int | None, background_sampler: str, region: str | None,
            covariates: str | None, rasters: str | None, inputs: str | None, date_col: str | None, loss: str,
            init_dir: str | None, encoder: str | None, min_records: int, epochs: int, lr: float, batch_size: int,
            seed: int, device: str, cv_folds: int, block_deg: float, pa_path: str | None, out: str) -> None:
    """Fit one multi-species SDM on RECORDS (CSV with , ; or tab, or Parquet)."""
    with _flags():
        config = SDMFitConfig(
            records=RecordsConfig(records, species_col, presence_col, lon_col, lat_col, _list(covariates),
                                  _list(rasters), date_col, region, min_records),
            background=BackgroundConfig(background, background_sample or None, background_sampler),  # 0 = none
            model=ModelChoice(inputs, encoder, init_dir),
            # min_steps=1: the CLI fits exactly --epochs passes (as it always has); --lr sets
            # the learning rate (the default 1e-3 is FitOptions' default).
            options=FitOptions(loss, epochs, min_steps=1, lr=lr, batch_size=batch_size, seed=seed, device=device),
            evaluation=EvalConfig(cv_folds, block_deg, pa_path),
        )
        metrics = fit_run(config, out)
    for note in metrics["notes"]:
        click.echo(f"geocsp: note: {note}", err=True)
    _echo_summary(out, metrics)


def _echo_summary(out: str, metrics: dict[str, Any]) -> None:
    """Print the counts and the CV / presence-absence means of a fit."""
    line = f"fitted {metrics['n_species']} species on {metrics['n_presences']} presences, {metrics['n_background']} background -> {out}"
    click.echo(line)
    for name, res in metrics.get("cv", {}).items():
        if name != "folds":
            click.echo(f"  cv {name}: mean AUC {res['mean_auc']:.3f}, AP {res['mean_ap']:.3f} ({res['n_species_scored']} species)")
    if "pa" in metrics:
        click.echo(f"  presence/absence: mean AUC {metrics['pa']['mean_auc']:.3f} ({metrics['pa']['n_species_scored']} species)")


@sdm.command("predict")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("sites", type=click.Path(dir_okay=False))
@click.option("--lon-col", default="lon", show_default=True)
@click.option("--lat-col", default="lat", show_default=True)
@click.option("--date-col", default=None)
@click.option("--site-col", default=None, help="Site id column (default: row number).")
@click.option("--wide", is_flag=True, help="One column per species instead of site_id,species,score rows.")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@overwrite_option("replace an existing --out file.")
def predict_cmd(run_dir: str, sites: str, lon_col: str, lat_col: str, date_col: str | None,
                site_col: str | None, wide: bool, out: str, overwrite: bool) -> None:
    """Suitability scores of every species at SITES (CSV/Parquet); an existing --out needs --overwrite."""
    refuse_existing(out, overwrite)
    n = predict_file(run_dir, sites, out, lon_col=lon_col, lat_col=lat_col, date_col=date_col,
                     site_col=site_col, wide=wide)
    click.echo(f"wrote {n} rows -> {out}")


@click.command("map")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--species", multiple=True,
              help="Species to map (required unless --richness); repeat for one band each in a .tif.")
@click.option("--region", default=None, help="min_lon,min_lat,max_lon,max_lat (default: raster extent / records).")
@click.option("--date", default=None, help="Day of year as MM-DD (models fitted with --date-col).")
@click.option("--res", type=float, default=0.5, show_default=True, help="Grid cell size in degrees.")
@click.option("--richness", is_flag=True, help="Sum of scores over species (or count above --threshold).")
@click.option("--threshold", type=float, default=None, help="With --richness: count species with score >= T.")
@click.option("--land-mask/--no-land-mask", default=True, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Image file (.png, .pdf, ...) or GeoTIFF (.tif: EPSG:4326, ocean = nodata; docs/export.md).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
def map_cmd(run_dir: str, species: tuple[str, ...], region: str | None, date: str | None, res: float,
            richness: bool, threshold: float | None, land_mask: bool, out: str, overwrite: bool) -> None:
    """Map the predicted range of a species (or richness) from an SDM or a CSP prior run (image or GeoTIFF)."""
    refuse_existing(out, overwrite)
    draw_map(run_dir, out, species, region, date, res, richness, threshold, land_mask)
    click.echo(f"wrote {out}")


COMMANDS = [sdm, map_cmd]
"""The top-level commands this module defines."""
