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
from geocsp.sdm.categorical import check_declared, fit_levels, looks_categorical, onehot_names
from geocsp.sdm.config import SDMFitConfig
from geocsp.sdm.cv import Scorer, kde_scorer, logistic_scorer, spatial_block_cv
from geocsp.sdm.evaluate import score_sites
from geocsp.sdm.fit import SDM_MODELS, fit_kde, fit_sdm
from geocsp.sdm.groups import species_groups
from geocsp.sdm.kde import parse_shrink
from geocsp.sdm.model import DEFAULT_POSITION, MODEL_DIR, FittedSDM, SDMConfig
from geocsp.sdm.predict import PRESENCES_FILE, save_presences
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
from geocsp.sdm.shrinkage import select_shrinkage
from geocsp.training.rundir import RUN_OUTPUTS, RunDir

SPECIES_DEFAULT = "species"
"""Species column of a presence/absence table when the records have none."""


def input_spec(config: SDMFitConfig, levels: dict[str, list[str]] | None = None) -> InputSpec:
    """The columns and rasters of the records (dates only for the presences).

    Args:
        config: the run config.
        levels: categorical column -> levels seen in fitting (:func:`categorical_levels`).

    Returns:
        The input spec: numeric covariates, then the one-hot columns of the categorical ones.
    """
    r = config.records
    levels = levels or {}
    numeric = check_declared(r.categorical, r.covariates)
    cats = tuple((c, tuple(v)) for c, v in levels.items())
    return InputSpec(r.lon_col, r.lat_col, (*numeric, *onehot_names(levels)), tuple(r.rasters), r.date_col,
                     categorical=cats, coords_optional=config.inputs == "covariates")


def read_tables(config: SDMFitConfig) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    """The records and background tables (coordinates in degrees), plus warning lines.

    Warnings: undeclared covariates that look like integer category codes.

    Raises:
        DatasetError, ConfigError: unreadable tables, unknown CRS.
    """
    r = config.records
    df = read_records(r.path, lon_col=r.lon_col, lat_col=r.lat_col, crs=r.crs)
    bg = config.background.path
    bgdf = read_records(bg, lon_col=r.lon_col, lat_col=r.lat_col, crs=r.crs) if bg else None
    numeric = check_declared(r.categorical, r.covariates)
    return df, bgdf, looks_categorical(df, numeric, r.path)


def read_presences(config: SDMFitConfig, spec: InputSpec, region: Region | None,
                   df: pd.DataFrame | None = None) -> tuple[Points, Points | None]:
    """Presences, and the background rows of the records table (``presence_col`` = 0).

    Args:
        config: the run config.
        spec: how to read the inputs.
        region: records outside are dropped; None keeps all.
        df: the records table already read (default: read ``records.path``).

    Returns:
        (presences with species names, background rows or None).

    Raises:
        DatasetError: a missing column, a presence column with values other than 0/1, or
            no presence row.
    """
    src, rec = config.records.path, config.records
    if df is None:
        df = read_records(src, lon_col=rec.lon_col, lat_col=rec.lat_col, crs=rec.crs)
    df = df.copy()
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


def read_background(config: SDMFitConfig, spec: InputSpec, region: Region | None, bg_rows: Points | None,
                    bgdf: pd.DataFrame | None = None) -> Points:
    """Background points: records rows with presence 0, a table, and/or a uniform sample.

    Args:
        config: the run config.
        spec: how to read the inputs (dates are not read from a background table).
        region: sampling region (default the raster extent); table rows outside are dropped.
        bg_rows: background rows of the records table, or None.
        bgdf: the background table already read (default: read ``background.path``).

    Returns:
        All background points.
    """
    cfg = config.background
    parts = [] if bg_rows is None else [bg_rows]
    if cfg.path:
        bspec = replace(spec, date_col=None)
        rec = config.records
        table = bgdf if bgdf is not None else read_records(cfg.path, lon_col=rec.lon_col, lat_col=rec.lat_col, crs=rec.crs)
        parts.append(points_from_table(table, bspec, cfg.path, None, region))
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
    enc, r_min = config.model.encoder, config.model.r_min_deg
    position = dict(DEFAULT_POSITION, **({"encoder": enc, "encoder_args": {}} if enc else {}))
    if r_min is not None and not enc:
        position["encoder_args"] = {**DEFAULT_POSITION["encoder_args"], "r_min_deg": float(r_min)}
    return SDMConfig(inputs=config.inputs, use_time=spec.date_col is not None, position=position,
                     num_covariates=len(spec.covariate_names))


def _scorers(config: SDMFitConfig, model_config: SDMConfig, fit_args: dict[str, Any], spec: InputSpec,
             shrink_k: float | None = None) -> dict[str, Scorer]:
    """CV scorers: the SDM itself (with the run's shrinkage ``k``), the KDE baseline, and with covariates the logistic one."""

    def model_scorer(tp: Points, tb: Points, test: Points, species: list[str]) -> np.ndarray:
        if config.model.kind != "neural":
            m = SDM_MODELS.get(config.model.kind).obj(tp, tb, config.model.bandwidth, species=species)
        else:
            m = fit_sdm(tp, tb, model_config, config.options, species=species, **fit_args)
            if shrink_k is not None:  # the k chosen on all the data (CV is not nested)
                m.kde = fit_kde(tp, tb, config.model.bandwidth, species=species).kde
                m.shrink_k = shrink_k
        return m.predict(test.lonlat, test.covariates, test.doy)

    scorers: dict[str, Scorer] = {"model": model_scorer, "kde": kde_scorer}
    if spec.covariate_names:
        scorers["logistic"] = logistic_scorer
    return scorers


def fit_model(config: SDMFitConfig, pres: Points, bg: Points, model_config: SDMConfig,
              fit_args: dict[str, Any]) -> tuple[FittedSDM, dict[str, Any] | None]:
    """Fit the registered model of ``config.model.kind``, shrunk toward the KDE when asked.

    Returns:
        (the fitted model, the shrinkage choice ``{"k", ...}`` or None).
    """
    m = config.model
    if m.kind != "neural":
        return SDM_MODELS.get(m.kind).obj(pres, bg, m.bandwidth), None
    fitted = fit_sdm(pres, bg, model_config, config.options, **fit_args)
    k = parse_shrink(m.shrink)
    if k is None:
        return fitted, None
    info: dict[str, Any] = {"k": k}
    if k == "cv":
        def net(tp: Points, tb: Points, species: list[str]) -> FittedSDM:
            return fit_sdm(tp, tb, model_config, config.options, species=species, **fit_args)

        ev = config.evaluation
        info = select_shrinkage(pres, bg, net, m.bandwidth, ev.cv_folds or 3, ev.block_deg, config.options.seed)
    fitted.kde = fit_kde(pres, bg, m.bandwidth, species=fitted.species).kde
    fitted.shrink_k = float(info["k"])
    return fitted, info


def score_pa(fitted: FittedSDM, config: SDMFitConfig, spec: InputSpec, warnings: list[str]) -> dict[str, Any]:
    """AUC/AP of the fitted model at the presence/absence sites (``metrics["pa"]``)."""
    r, pa = config.records, str(config.evaluation.pa)
    sites = read_records(pa, lon_col=r.lon_col, lat_col=r.lat_col, crs=r.crs)
    return score_sites(fitted, sites, pa, species_col=r.species_col or SPECIES_DEFAULT,
                       group_col=config.evaluation.pa_group_col, lon_col=spec.lon_col, lat_col=spec.lat_col,
                       date_col=spec.date_col, warnings=warnings)


def fit_run(config: SDMFitConfig, out: str | Path) -> dict[str, Any]:
    """Read the inputs, fit the SDM, evaluate it and write the run directory ``out``.

    Args:
        config: the run config.
        out: the run directory to create (an empty or absent directory).

    Returns:
        The metrics written to ``metrics.json`` (counts, ``inputs``, ``model``, ``notes`` --
        one line per input rule that dropped rows --, ``warnings`` -- covariates that look
        categorical, unseen levels --, ``shrink``, ``cv`` and ``pa`` when asked for).

    Raises:
        ConfigError: ``out`` already holds a model or another run's files (``metrics.json``,
            ``config.yaml``, ...: other files are kept); invalid settings.
        DatasetError, CoordinateError, MissingFileError: bad input (see docs/sdm.md).
    """
    out = Path(out)
    if (out / MODEL_DIR).exists():
        raise ConfigError(f"{out}: already holds a fitted model; choose a new directory")
    taken = [n for n in (PRESENCES_FILE, *RUN_OUTPUTS) if (out / n).exists()] if out.is_dir() else []
    if taken:  # another run's files (a training run's metrics.json would be replaced)
        raise ConfigError(f"{out}: already holds {taken[0]} (another run?); choose a new directory")
    rec = config.records
    df, bgdf, warnings = read_tables(config)
    tables = [t for t in (df, bgdf) if t is not None]
    levels = fit_levels(tables, rec.categorical, rec.path) if rec.categorical else {}
    spec = input_spec(config, levels)
    region = parse_region(rec.region)
    pres, bg_rows = read_presences(config, spec, region, df)
    pres = drop_rare_species(pres, rec.min_records, rec.path)
    bg = read_background(config, spec, region, bg_rows, bgdf)
    groups = species_groups(df, rec.species_col, rec.group_col, rec.path) if rec.group_col and rec.species_col else None
    model_config = sdm_config(config, spec)
    fit_args: dict[str, Any] = {"covariate_names": spec.covariate_names, "rasters": spec.rasters,
                                "init_dir": config.model.init}
    fitted, shrink_info = fit_model(config, pres, bg, model_config, fit_args)
    fitted.options.update({"inputs": model_config.inputs, "date_col": spec.date_col, "categorical": levels,
                           "groups": groups})
    metrics: dict[str, Any] = {"n_presences": len(pres), "n_background": len(bg), "n_species": len(fitted.species),
                               "inputs": model_config.inputs, "model": fitted.kind, "notes": pres.notes + bg.notes,
                               "warnings": warnings}
    if shrink_info is not None:
        metrics["shrink"] = shrink_info
    if config.evaluation.cv_folds:
        scorers = _scorers(config, model_config, fit_args, spec, fitted.shrink_k)
        metrics["cv"] = spatial_block_cv(pres, bg, scorers, config.evaluation.cv_folds,
                                         config.evaluation.block_deg, config.options.seed)
    if config.evaluation.pa:
        metrics["pa"] = score_pa(fitted, config, spec, warnings)
    fitted.options["notes"] = metrics["notes"]
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
