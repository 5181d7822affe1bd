"""``geocsp sdm fit|predict|evaluate``: species distribution models (docs/sdm.md).

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

from geocsp.cli.options import SEED, overwrite_option
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
    fit_run,
    predict_file,
)
from geocsp.sdm.config import INPUTS, MODEL_KINDS, SAMPLERS
from geocsp.sdm.evaluate import evaluate_run
from geocsp.sdm.kde import parse_bandwidth, parse_shrink
from geocsp.sdm.mapping import write_map_raster
from geocsp.sdm.model import FittedSDM
from geocsp.viz.raster import is_geotiff

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
    "records.crs": "--crs",
    "records.categorical": "--categorical",
    "records.group_col": "--group-col",
    "background.path": "--background",
    "background.sample": "--background-sample",
    "background.sampler": "--background-sampler",
    "model.inputs": "--inputs",
    "model.encoder": "--encoder",
    "model.init": "--init",
    "model.kind": "--model",
    "model.bandwidth": "--bandwidth",
    "model.shrink": "--shrink-to-kde",
    "model.r_min_deg": "--r-min",
    "evaluation.cv_folds": "--cv-folds",
    "evaluation.block_deg": "--block-deg",
    "evaluation.pa": "--pa",
    "evaluation.pa_group_col": "--pa-group-col",
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
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--cv-folds", type=int, default=0, help="K spatial-block CV folds (0 = no CV).")
@click.option("--block-deg", type=float, default=1.0, show_default=True)
@click.option("--pa", "pa_path", type=click.Path(dir_okay=False), default=None, help="Presence/absence sites table.")
@click.option("--pa-group-col", default=None, help="Survey-group column of the --pa sites (needs --group-col).")
@click.option("--crs", default=None, help="CRS of the lon/lat columns, e.g. EPSG:28355 (reprojected to degrees).")
@click.option("--categorical", default=None, help="Comma-separated categorical covariate columns (one-hot).")
@click.option("--group-col", default=None, help="Survey-group column of the records (stored per species).")
@click.option("--model", "kind", type=click.Choice(list(MODEL_KINDS)), default="neural", show_default=True,
              help="neural SDM, or a KDE of each species' presences on coordinates.")
@click.option("--bandwidth", default="cv", show_default=True, help="KDE bandwidth: cv, scott or km.")
@click.option("--shrink-to-kde", "shrink", default=None, help="Pool the network with the KDE, weight n/(n+K): K or cv.")
@click.option("--r-min", "r_min", type=float, default=None, help="Finest scale of the default position encoder, degrees (0.1).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True)
def fit_cmd(records: str, species_col: str | None, lon_col: str, lat_col: str, presence_col: str | None,
            background: str | None, background_sample: int | None, background_sampler: str, region: str | None,
            covariates: str | None, rasters: str | None, inputs: str | None, date_col: str | None, loss: str,
            init_dir: str | None, encoder: str | None, min_records: int, epochs: int, lr: float, batch_size: int,
            seed: int, device: str, cv_folds: int, block_deg: float, pa_path: str | None, pa_group_col: str | None,
            crs: str | None, categorical: str | None, group_col: str | None, kind: str, bandwidth: str,
            shrink: str | None, r_min: float | None, out: str) -> None:
    """Fit one multi-species SDM on RECORDS (CSV, CSV.gz, Parquet, GeoParquet, GeoJSON)."""
    with _flags():
        config = SDMFitConfig(
            records=RecordsConfig(records, species_col, presence_col, lon_col, lat_col, _list(covariates),
                                  _list(rasters), date_col, region, min_records, crs, _list(categorical), group_col),
            background=BackgroundConfig(background, background_sample or None, background_sampler),  # 0 = none
            model=ModelChoice(inputs, encoder, init_dir, kind, parse_bandwidth(bandwidth), parse_shrink(shrink), r_min),
            # min_steps=1: the CLI fits exactly --epochs passes (as it always has); --lr sets
            # the learning rate (the default 1e-3 is FitOptions' default).
            options=FitOptions(loss, epochs, min_steps=1, lr=lr, batch_size=batch_size, seed=seed, device=device),
            evaluation=EvalConfig(cv_folds, block_deg, pa_path, pa_group_col),
        )
        metrics = fit_run(config, out)
    for note in metrics["notes"]:
        click.echo(f"geocsp: note: {note}", err=True)
    _warn(metrics.get("warnings", []))
    _echo_summary(out, metrics)


def _warn(lines: list[str]) -> None:
    """Print each warning line on stderr as ``geocsp: warning: ...``."""
    for line in lines:
        click.echo(f"geocsp: warning: {line}", err=True)


def _echo_summary(out: str, metrics: dict[str, Any]) -> None:
    """Print the counts and the CV / presence-absence means of a fit."""
    line = f"fitted {metrics['n_species']} species on {metrics['n_presences']} presences, {metrics['n_background']} background -> {out}"
    click.echo(line)
    if "shrink" in metrics:
        click.echo(f"  shrunk toward the KDE: k = {metrics['shrink']['k']:g} (weight n/(n+k))")
    for name, res in metrics.get("cv", {}).items():
        if name != "folds":
            click.echo(f"  cv {name}: mean AUC {res['mean_auc']:.3f}, AP {res['mean_ap']:.3f} ({res['n_species_scored']} species)")
    if "pa" in metrics:
        click.echo(f"  presence/absence: mean AUC {metrics['pa']['mean_auc']:.3f} ({metrics['pa']['n_species_scored']} species)")


@sdm.command("predict")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("sites", type=click.Path(dir_okay=False), required=False)
@click.option("--lon-col", default="lon", show_default=True)
@click.option("--lat-col", default="lat", show_default=True)
@click.option("--crs", default=None, help="CRS of the sites' lon/lat columns, e.g. EPSG:28355.")
@click.option("--date-col", default=None)
@click.option("--site-col", default=None, help="Site id column (default: row number).")
@click.option("--group-col", default=None, help="Sites' survey-group column: score only the species of the site's group.")
@click.option("--wide", is_flag=True, help="One column per species instead of site_id,species,score rows.")
@click.option("--grid", "grid", default=None, help="min_lon,min_lat,max_lon,max_lat: predict on a grid (GeoTIFF --out).")
@click.option("--res", type=float, default=0.1, show_default=True, help="With --grid: cell size in degrees.")
@click.option("--species", multiple=True, help="With --grid: species to write, one band each (default all).")
@click.option("--land-mask/--no-land-mask", default=True, show_default=True, help="With --grid: ocean cells as nodata.")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@overwrite_option("replace an existing --out file.")
def predict_cmd(run_dir: str, sites: str | None, lon_col: str, lat_col: str, crs: str | None, date_col: str | None,
                site_col: str | None, group_col: str | None, wide: bool, grid: str | None, res: float,
                species: tuple[str, ...], land_mask: bool, out: str, overwrite: bool) -> None:
    """Suitability scores of every species at SITES (a table), or on a --grid as a GeoTIFF."""
    refuse_existing(out, overwrite, inputs=[sites], file=True)
    if grid is not None:
        if sites is not None:
            raise ConfigError("--grid: give either SITES or --grid, not both")
        if not is_geotiff(out):
            raise ConfigError(f"--out {out}: a --grid prediction is a GeoTIFF; expected a .tif or .tiff file")
        names = list(species) or FittedSDM.load(run_dir).species
        write_map_raster(run_dir, out, names, grid, None, res, land_mask=land_mask)
        click.echo(f"wrote {len(names)} bands -> {out}")
        return
    if sites is None:
        raise ConfigError("give SITES (a table of sites) or --grid BBOX")
    warnings: list[str] = []
    n = predict_file(run_dir, sites, out, lon_col=lon_col, lat_col=lat_col, date_col=date_col, site_col=site_col,
                     wide=wide, crs=crs, group_col=group_col, warnings=warnings)
    _warn(warnings)
    click.echo(f"wrote {n} rows -> {out}")


@sdm.command("evaluate")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--pa", "pa", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Presence/absence sites (long: species column; wide: one 0/1 column per species); repeat.")
@click.option("--env", "env", multiple=True, type=click.Path(dir_okay=False),
              help="Covariates of the same sites, row for row, one per --pa (repeat in the same order).")
@click.option("--group-col", default=None, help="Survey-group column: each species only on its own group's sites.")
@click.option("--species-col", default="species", show_default=True, help="Species column of a long table.")
@click.option("--site-col", default=None, help="Site id column (long tables; checks --env rows).")
@click.option("--lon-col", default="lon", show_default=True)
@click.option("--lat-col", default="lat", show_default=True)
@click.option("--crs", default=None, help="CRS of the lon/lat columns, e.g. EPSG:28355.")
@click.option("--date-col", default=None)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Per-species AUC/AP: .json or .csv.")
@overwrite_option("replace an existing --out file.")
def evaluate_cmd(run_dir: str, pa: tuple[str, ...], env: tuple[str, ...], group_col: str | None, species_col: str,
                 site_col: str | None, lon_col: str, lat_col: str, crs: str | None, date_col: str | None, out: str,
                 overwrite: bool) -> None:
    """Per-species AUC/AP of RUN_DIR on presence/absence sites (the literature's protocol)."""
    refuse_existing(out, overwrite, inputs=[*pa, *env], file=True)
    warnings: list[str] = []
    res = evaluate_run(run_dir, pa, out, env_paths=env, species_col=species_col, group_col=group_col,
                       lon_col=lon_col, lat_col=lat_col, crs=crs, site_col=site_col, date_col=date_col,
                       warnings=warnings)
    _warn(warnings)
    click.echo(f"mean AUC {res['mean_auc']:.3f}, AP {res['mean_ap']:.3f} ({res['n_species_scored']} of "
               f"{res['n_species']} species, {res['n_sites']} sites) -> {out}")


COMMANDS = [sdm]
"""The top-level commands this module defines."""
