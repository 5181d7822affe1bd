"""``geocsp sdm fit|predict`` and ``geocsp map``: species distribution models (docs/sdm.md).

Every input is read and checked before anything is written; a run directory is built in a
temporary directory beside ``--out`` and renamed into place, so a failed fit leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from geocsp.errors import ConfigError

_LIST = lambda s: tuple(x.strip() for x in s.split(",") if x.strip()) if s else ()  # noqa: E731


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
@click.option("--background-sampler", type=click.Choice(["land", "sphere"]), default="land", show_default=True)
@click.option("--region", default=None, help="min_lon,min_lat,max_lon,max_lat or a .geojson polygon file.")
@click.option("--covariates", default=None, help="Comma-separated covariate columns.")
@click.option("--rasters", default=None, help="Comma-separated raster files sampled at the points.")
@click.option("--inputs", type=click.Choice(["position", "covariates", "both"]), default=None,
              help="Towers (default: both with covariates, else position).")
@click.option("--date-col", default=None, help="Date column (YYYY-MM-DD, MM-DD or day of year).")
@click.option("--loss", type=click.Choice(["full", "an_full", "an_ssdl", "an_slds"]), default="full", show_default=True)
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
def fit_cmd(**kw: Any) -> None:
    """Fit one multi-species SDM on RECORDS (CSV with , ; or tab, or Parquet)."""
    from geocsp.sdm.cv import kde_scorer, logistic_scorer, spatial_block_cv
    from geocsp.sdm.fit import FitOptions, fit_sdm
    from geocsp.sdm.model import DEFAULT_POSITION, SDMConfig
    from geocsp.sdm.records import InputSpec, drop_rare_species
    from geocsp.sdm.region import parse_region

    out = Path(kw["out"])
    if (out / "model").exists():
        raise ConfigError(f"--out {out}: already holds a fitted model; choose a new directory")
    spec = InputSpec(kw["lon_col"], kw["lat_col"], _LIST(kw["covariates"]), _LIST(kw["rasters"]), kw["date_col"])
    region = parse_region(kw["region"])
    pres, bg_rows = _presences(kw, spec, region)
    pres = drop_rare_species(pres, kw["min_records"], kw["records"])
    bg = _background(kw, spec, region, bg_rows)
    inputs = kw["inputs"] or ("both" if spec.covariate_names else "position")
    position = dict(DEFAULT_POSITION, **({"encoder": kw["encoder"], "encoder_args": {}} if kw["encoder"] else {}))
    config = SDMConfig(inputs=inputs, use_time=spec.date_col is not None, position=position,
                       num_covariates=len(spec.covariate_names))
    opts = FitOptions(kw["loss"], kw["epochs"], kw["lr"], batch_size=kw["batch_size"], seed=kw["seed"], device=kw["device"])
    fit_args = {"covariate_names": spec.covariate_names, "rasters": spec.rasters, "init_dir": kw["init_dir"]}
    pa = _read_pa(kw, spec) if kw["pa_path"] else None
    fitted = fit_sdm(pres, bg, config, opts, **fit_args)
    metrics: dict[str, Any] = {"n_presences": len(pres), "n_background": len(bg), "n_species": len(fitted.species),
                               "inputs": inputs, "notes": pres.notes + bg.notes}
    if kw["cv_folds"]:
        def model_scorer(tp, tb, test, species):
            m = fit_sdm(tp, tb, config, opts, species=species, **fit_args)
            return m.predict(test.lonlat, test.covariates, test.doy)

        scorers = {"model": model_scorer, "kde": kde_scorer}
        if spec.covariate_names:
            scorers["logistic"] = logistic_scorer
        metrics["cv"] = spatial_block_cv(pres, bg, scorers, kw["cv_folds"], kw["block_deg"], kw["seed"])
    if pa is not None:
        metrics["pa"] = _evaluate_pa(fitted, pa, kw, spec)
    fitted.options.update({"inputs": inputs, "date_col": spec.date_col, "notes": metrics["notes"]})
    _write_run(out, fitted, pres, metrics)
    for note in metrics["notes"]:
        click.echo(f"geocsp: note: {note}", err=True)
    _echo_summary(out, metrics)


def _presences(kw: dict, spec: Any, region: Any) -> tuple[Any, Any]:
    """Presences (and background rows when --presence-col is given)."""
    import numpy as np

    from geocsp.sdm.records import points_from_table, read_records, require_columns

    src = kw["records"]
    df = read_records(src)
    sp_col = kw["species_col"]
    if sp_col is None:
        sp_col = "__species__"
        df[sp_col] = Path(src).stem
    bg = None
    if kw["presence_col"]:
        require_columns(df, [kw["presence_col"]], src, "--presence-col")
        flag = df[kw["presence_col"]].astype(str).str.strip()
        if not flag.isin(["0", "1", "0.0", "1.0"]).all():
            raise ConfigError(f"{src}: --presence-col '{kw['presence_col']}' must hold only 0 and 1")
        is_p = flag.isin(["1", "1.0"]).to_numpy()
        bg = points_from_table(df[~is_p].reset_index(drop=True), spec, f"{src} (background rows)", None, region)
        df = df[is_p].reset_index(drop=True)
        if len(df) == 0:
            raise ConfigError(f"{src}: no row has {kw['presence_col']} = 1")
    pres = points_from_table(df, spec, src, sp_col, region)
    pres.species = np.asarray(pres.species, dtype=str)
    return pres, bg


def _background(kw: dict, spec: Any, region: Any, bg_rows: Any) -> Any:
    from dataclasses import replace

    from geocsp.sdm.records import (
        concat_points,
        points_from_table,
        raster_region,
        read_records,
        sample_background,
    )

    parts = [] if bg_rows is None else [bg_rows]
    if kw["background"]:
        bspec = replace(spec, date_col=None)
        parts.append(points_from_table(read_records(kw["background"]), bspec, kw["background"], None, region))
    if kw["background_sample"]:
        reg = region or (raster_region(spec.rasters) if spec.rasters else None)
        if reg is None:
            raise ConfigError("--background-sample needs --region (or --rasters, whose extent is then used)")
        if spec.covariate_cols:
            raise ConfigError("--background-sample cannot give table covariates; use --background or --rasters")
        parts.append(sample_background(kw["background_sample"], reg, spec.rasters, kw["background_sampler"], kw["seed"]))
    if not parts:
        raise ConfigError("no background: pass --background BG.csv, --background-sample N or --presence-col")
    return concat_points(parts)


def _read_pa(kw: dict, spec: Any) -> Any:
    from geocsp.sdm.records import read_records, require_columns

    df = read_records(kw["pa_path"])
    require_columns(df, [kw["species_col"] or "species", spec.lon_col, spec.lat_col], kw["pa_path"], "--pa")
    return df


def _evaluate_pa(fitted: Any, pa: Any, kw: dict, spec: Any) -> dict:
    from geocsp.sdm.cv import evaluate_pa, pa_sites
    from geocsp.sdm.predict import site_inputs

    sites, y = pa_sites(pa, kw["species_col"] or "species", fitted.species, spec.lon_col, spec.lat_col)
    date = spec.date_col if spec.date_col in sites.columns else None
    ll, cov, doy = site_inputs(fitted, sites, kw["pa_path"], spec.lon_col, spec.lat_col, date)
    return evaluate_pa(y, fitted.predict(ll, cov, doy), fitted.species)


def _write_run(out: Path, fitted: Any, pres: Any, metrics: dict) -> None:
    """Write model/, presences.csv and metrics.json into a temp dir, then rename it to ``out``."""
    from geocsp.io import atomic_write_json
    from geocsp.sdm.predict import save_presences

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fitted.save(tmp)
        save_presences(tmp, pres.lonlat, pres.species)
        atomic_write_json(tmp / "metrics.json", metrics)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if out.exists():
            for item in tmp.iterdir():
                os.replace(item, out / item.name)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _echo_summary(out: Path, metrics: dict) -> None:
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
def predict_cmd(run_dir: str, sites: str, lon_col: str, lat_col: str, date_col: str | None,
                site_col: str | None, wide: bool, out: str) -> None:
    """Suitability scores of every species at SITES (CSV/Parquet)."""
    from geocsp.io import atomic_path
    from geocsp.sdm.model import FittedSDM
    from geocsp.sdm.predict import predict_table
    from geocsp.sdm.records import read_records

    fitted = FittedSDM.load(run_dir)
    table = predict_table(fitted, read_records(sites), sites, lon_col=lon_col, lat_col=lat_col,
                          date_col=date_col, site_col=site_col, wide=wide)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    click.echo(f"wrote {len(table)} rows -> {out}")


@click.command("map")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--species", default=None, help="Species to map (required unless --richness).")
@click.option("--region", default=None, help="min_lon,min_lat,max_lon,max_lat (default: raster extent / records).")
@click.option("--date", default=None, help="Day of year as MM-DD (models fitted with --date-col).")
@click.option("--res", type=float, default=0.5, show_default=True, help="Grid cell size in degrees.")
@click.option("--richness", is_flag=True, help="Sum of scores over species (or count above --threshold).")
@click.option("--threshold", type=float, default=None, help="With --richness: count species with score >= T.")
@click.option("--land-mask/--no-land-mask", default=True, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def map_cmd(run_dir: str, species: str | None, region: str | None, date: str | None, res: float,
            richness: bool, threshold: float | None, land_mask: bool, out: str) -> None:
    """Map the predicted range of a species (or richness) from an SDM or a CSP prior run."""
    from geocsp.sdm.mapping import range_map
    from geocsp.viz.maps import plot_species_map, save_figure

    if not richness and species is None:
        raise ConfigError("map: pass --species NAME or --richness")
    grid, extent, points, title, label = range_map(run_dir, species, region, date, res, richness, threshold)
    fig = plot_species_map(grid, extent, points=points, title=title, cbar_label=label, land_mask=land_mask)
    save_figure(fig, out)
    click.echo(f"wrote {out}")


COMMANDS = [sdm, map_cmd]
