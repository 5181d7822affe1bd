"""One SDM fit run: read and check every input, fit, evaluate, write the run directory.

:func:`fit_run` is what ``geocsp sdm fit`` calls. Every input is read and checked before
anything is written; the run directory is built in a temporary directory beside ``out``
and renamed into place, so a failed fit leaves nothing behind.

Run directory (file names defined once: :data:`~geocsp.sdm.model.MODEL_DIR`,
:data:`~geocsp.sdm.predict.PRESENCES_FILE`, :data:`~geocsp.training.rundir.METRICS_FILE`)::

    OUT/model/          model.safetensors + config.json (kind "sdm")
    OUT/presences.csv   presence coordinates (seeded sample of at most 20 000), for maps
    OUT/metrics.json    counts, notes, CV and presence/absence results
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geocsp.errors import ConfigError
from geocsp.sdm.config import SDMFitConfig
from geocsp.sdm.cv import (
    Scorer,
    evaluate_pa,
    kde_scorer,
    logistic_scorer,
    pa_sites,
    spatial_block_cv,
)
from geocsp.sdm.fit import fit_sdm
from geocsp.sdm.model import DEFAULT_POSITION, MODEL_DIR, FittedSDM, SDMConfig
from geocsp.sdm.predict import save_presences, site_inputs
from geocsp.sdm.records import (
    InputSpec,
    Points,
    concat_points,
    drop_rare_species,
    points_from_table,
    raster_region,
    read_records,
    require_columns,
    sample_background,
)
from geocsp.sdm.region import Region, parse_region
from geocsp.training.rundir import RunDir

SPECIES_DEFAULT = "species"
"""Species column of a presence/absence table when the records have none."""


def input_spec(config: SDMFitConfig) -> InputSpec:
    """The columns and rasters of the records (dates only for the presences).

    Args:
        config: the run config.

    Returns:
        The input spec.
    """
    r = config.records
    return InputSpec(r.lon_col, r.lat_col, tuple(r.covariates), tuple(r.rasters), r.date_col)


def read_presences(config: SDMFitConfig, spec: InputSpec, region: Region | None) -> tuple[Points, Points | None]:
    """Presences, and the background rows of the records table (``presence_col`` = 0).

    Args:
        config: the run config.
        spec: how to read the inputs.
        region: records outside are dropped; None keeps all.

    Returns:
        (presences with species names, background rows or None).

    Raises:
        DatasetError: a missing column, a presence column with values other than 0/1, or
            no presence row.
    """
    src, rec = config.records.path, config.records
    df = read_records(src)
    sp_col = rec.species_col
    if sp_col is None:
        sp_col = "__species__"
        df[sp_col] = Path(src).stem
    bg = None
    if rec.presence_col:
        require_columns(df, [rec.presence_col], src, "presence_col")
        flag = df[rec.presence_col].astype(str).str.strip()
        if not flag.isin(["0", "1", "0.0", "1.0"]).all():
            raise ConfigError(f"{src}: presence column '{rec.presence_col}' must hold only 0 and 1")
        is_p = flag.isin(["1", "1.0"]).to_numpy()
        bg = points_from_table(df[~is_p].reset_index(drop=True), spec, f"{src} (background rows)", None, region)
        df = df[is_p].reset_index(drop=True)
        if len(df) == 0:
            raise ConfigError(f"{src}: no row has {rec.presence_col} = 1")
    pres = points_from_table(df, spec, src, sp_col, region)
    pres.species = np.asarray(pres.species, dtype=str)
    return pres, bg


def read_background(config: SDMFitConfig, spec: InputSpec, region: Region | None, bg_rows: Points | None) -> Points:
    """Background points: records rows with presence 0, a table, and/or a uniform sample.

    Args:
        config: the run config.
        spec: how to read the inputs (dates are not read from a background table).
        region: sampling region (default the raster extent); table rows outside are dropped.
        bg_rows: background rows of the records table, or None.

    Returns:
        All background points.
    """
    cfg = config.background
    parts = [] if bg_rows is None else [bg_rows]
    if cfg.path:
        bspec = replace(spec, date_col=None)
        parts.append(points_from_table(read_records(cfg.path), bspec, cfg.path, None, region))
    if cfg.sample:
        reg = region or raster_region(spec.rasters)
        parts.append(sample_background(cfg.sample, reg, spec.rasters, cfg.sampler, config.options.seed))
    return concat_points(parts)


def sdm_config(config: SDMFitConfig, spec: InputSpec) -> SDMConfig:
    """The SDM architecture of a run: towers, position encoder, covariates, time input.

    Args:
        config: the run config.
        spec: the inputs (covariates, date column).

    Returns:
        The architecture.
    """
    enc = config.model.encoder
    position = dict(DEFAULT_POSITION, **({"encoder": enc, "encoder_args": {}} if enc else {}))
    return SDMConfig(inputs=config.inputs, use_time=spec.date_col is not None, position=position,
                     num_covariates=len(spec.covariate_names))


def _scorers(config: SDMFitConfig, model_config: SDMConfig, fit_args: dict[str, Any], spec: InputSpec) -> dict[str, Scorer]:
    """CV scorers: the SDM itself, the KDE baseline, and with covariates the logistic one."""

    def model_scorer(tp: Points, tb: Points, test: Points, species: list[str]) -> np.ndarray:
        m = fit_sdm(tp, tb, model_config, config.options, species=species, **fit_args)
        return m.predict(test.lonlat, test.covariates, test.doy)

    scorers: dict[str, Scorer] = {"model": model_scorer, "kde": kde_scorer}
    if spec.covariate_names:
        scorers["logistic"] = logistic_scorer
    return scorers


def read_pa(config: SDMFitConfig, spec: InputSpec) -> pd.DataFrame:
    """The presence/absence sites table (checked for its columns).

    Raises:
        DatasetError: unreadable table or a missing column.
    """
    path = str(config.evaluation.pa)
    df = read_records(path)
    require_columns(df, [config.records.species_col or SPECIES_DEFAULT, spec.lon_col, spec.lat_col], path, "pa")
    return df


def score_pa(fitted: FittedSDM, pa: pd.DataFrame, config: SDMFitConfig, spec: InputSpec) -> dict[str, Any]:
    """AUC/AP of the fitted model at presence/absence sites (``metrics["pa"]``)."""
    species_col = config.records.species_col or SPECIES_DEFAULT
    sites, y = pa_sites(pa, species_col, fitted.species, spec.lon_col, spec.lat_col)
    date = spec.date_col if spec.date_col in sites.columns else None
    ll, cov, doy = site_inputs(fitted, sites, str(config.evaluation.pa), spec.lon_col, spec.lat_col, date)
    return evaluate_pa(y, fitted.predict(ll, cov, doy), fitted.species)


def fit_run(config: SDMFitConfig, out: str | Path) -> dict[str, Any]:
    """Read the inputs, fit the SDM, evaluate it and write the run directory ``out``.

    Args:
        config: the run config.
        out: the run directory to create (an empty or absent directory).

    Returns:
        The metrics written to ``metrics.json`` (counts, ``inputs``, ``notes`` -- one line
        per input rule that dropped rows --, ``cv`` and ``pa`` when asked for).

    Raises:
        ConfigError: ``out`` already holds a model; invalid settings.
        DatasetError, CoordinateError, MissingFileError: bad input (see docs/sdm.md).
    """
    out = Path(out)
    if (out / MODEL_DIR).exists():
        raise ConfigError(f"{out}: already holds a fitted model; choose a new directory")
    spec = input_spec(config)
    region = parse_region(config.records.region)
    pres, bg_rows = read_presences(config, spec, region)
    pres = drop_rare_species(pres, config.records.min_records, config.records.path)
    bg = read_background(config, spec, region, bg_rows)
    model_config = sdm_config(config, spec)
    fit_args: dict[str, Any] = {"covariate_names": spec.covariate_names, "rasters": spec.rasters,
                                "init_dir": config.model.init}
    pa = read_pa(config, spec) if config.evaluation.pa else None
    fitted = fit_sdm(pres, bg, model_config, config.options, **fit_args)
    metrics: dict[str, Any] = {"n_presences": len(pres), "n_background": len(bg), "n_species": len(fitted.species),
                               "inputs": model_config.inputs, "notes": pres.notes + bg.notes}
    if config.evaluation.cv_folds:
        scorers = _scorers(config, model_config, fit_args, spec)
        metrics["cv"] = spatial_block_cv(pres, bg, scorers, config.evaluation.cv_folds,
                                         config.evaluation.block_deg, config.options.seed)
    if pa is not None:
        metrics["pa"] = score_pa(fitted, pa, config, spec)
    fitted.options.update({"inputs": model_config.inputs, "date_col": spec.date_col, "notes": metrics["notes"]})
    write_run(out, fitted, pres, metrics)
    return metrics


def write_run(out: Path, fitted: FittedSDM, pres: Points, metrics: dict[str, Any]) -> None:
    """Write ``model/``, ``presences.csv`` and ``metrics.json`` into a temp dir, then rename it to ``out``.

    Args:
        out: the run directory (absent, empty, or holding other files, which are kept).
        fitted: the fitted model.
        pres: the presences (coordinates and species stored for maps).
        metrics: the metrics.
    """
    assert pres.species is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fitted.save(tmp)
        save_presences(tmp, pres.lonlat, pres.species)
        RunDir(tmp, rank=0).write_metrics(metrics)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if out.exists():
            for item in tmp.iterdir():
                os.replace(item, out / item.name)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
