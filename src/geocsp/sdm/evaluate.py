"""``geocsp sdm evaluate``: AUC/AP of a fitted SDM on presence/absence survey sites.

Sites come from one or more tables (``--pa``, long or wide, :mod:`geocsp.sdm.groups`),
each optionally paired with a covariate table of the same sites, row for row (``--env``:
the disdat ``test_env_<group>`` files; with ``--site-col`` the ids must agree row by row).
Each species is scored only on the sites that count for it (its own column's rows; with
``--group-col``, its own survey groups' sites). The result -- per-species AUC, AP, counts,
groups, and the means over species -- is written atomically as JSON, or as CSV (one row per
species plus a ``mean`` row) when ``out`` ends in ``.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from geocsp.data.labels import text_cells
from geocsp.errors import ConfigError, DatasetError
from geocsp.io import atomic_path, atomic_write_json
from geocsp.sdm.groups import evaluate_sites, run_groups, site_table
from geocsp.sdm.model import FittedSDM
from geocsp.sdm.predict import site_inputs
from geocsp.sdm.records import read_records


def attach_env(pa: pd.DataFrame, env: pd.DataFrame, site_col: str | None, pa_src: str, env_src: str) -> pd.DataFrame:
    """``pa`` with the columns of ``env`` it lacks (same sites, row for row).

    Raises:
        DatasetError: different row counts, or (``site_col`` in both) a differing site id.
    """
    if len(pa) != len(env):
        raise DatasetError(f"{env_src}: {len(env)} rows but {pa_src} has {len(pa)}; expected the same sites row for row")
    if site_col and site_col in pa.columns and site_col in env.columns:
        a, b = text_cells(pa[site_col]).to_numpy(), text_cells(env[site_col]).to_numpy()
        bad = (a != b).nonzero()[0]
        if len(bad):
            i = int(bad[0])
            raise DatasetError(f"{env_src}:{i}:{site_col}: site {b[i]!r} but {pa_src} row {i} is {a[i]!r}")
    extra = [c for c in env.columns if c not in pa.columns]
    return pd.concat([pa.reset_index(drop=True), env[extra].reset_index(drop=True)], axis=1)


def read_sites(pa_paths: Sequence[str | Path], env_paths: Sequence[str | Path] = (), *, lon_col: str = "lon",
               lat_col: str = "lat", crs: str | None = None, site_col: str | None = None) -> pd.DataFrame:
    """The PA tables stacked (each joined with its ``env`` table), coordinates in degrees.

    Raises:
        ConfigError: ``env_paths`` given but not one per PA table.
        DatasetError, MissingFileError: unreadable tables, mismatched env rows.
    """
    if env_paths and len(env_paths) != len(pa_paths):
        raise ConfigError(f"--env: give one covariate table per --pa table ({len(pa_paths)}), got {len(env_paths)}")
    frames = []
    for i, p in enumerate(pa_paths):
        df = read_records(p, lon_col=lon_col, lat_col=lat_col, crs=crs)
        if env_paths:
            env = read_records(env_paths[i], lon_col=lon_col, lat_col=lat_col, crs=crs)
            df = attach_env(df, env, site_col, str(p), str(env_paths[i]))
        frames.append(df)
    return pd.concat(frames, ignore_index=True, sort=False)


def score_sites(fitted: FittedSDM, sites: pd.DataFrame, source: str, *, species_col: str = "species",
                group_col: str | None = None, lon_col: str = "lon", lat_col: str = "lat",
                site_col: str | None = None, date_col: str | None = None,
                warnings: list[str] | None = None) -> dict[str, Any]:
    """Per-species AUC/AP of ``fitted`` on the sites of a PA table (see the module docstring).

    Args:
        fitted: the model.
        sites: long or wide PA table (+ covariates).
        source: file name(s) for messages.
        species_col: species column of a long table.
        group_col: survey-group column of the sites, or None.
        lon_col: longitude column.
        lat_col: latitude column.
        site_col: site id column of a long table.
        date_col: date column, used when present.
        warnings: collects unseen categorical levels.

    Returns:
        See :func:`geocsp.sdm.groups.evaluate_sites`.
    """
    groups = run_groups(fitted.options) if group_col and fitted.options.get("groups") else None
    table = site_table(sites, fitted.species, source, species_col=species_col, group_col=group_col, groups=groups,
                       lon_col=lon_col, lat_col=lat_col, site_col=site_col)
    date = date_col if date_col and date_col in table.sites.columns else None
    ll, cov, doy = site_inputs(fitted, table.sites, source, lon_col, lat_col, date, warnings)
    return evaluate_sites(table, fitted.predict(ll, cov, doy), fitted.species, groups)


def write_evaluation(out: str | Path, result: dict[str, Any]) -> Path:
    """Write an evaluation atomically: CSV (``.csv``: species rows + ``mean``) or JSON."""
    out = Path(out)
    if out.suffix.lower() == ".csv":
        rows = [{"species": s, **{k: (";".join(v) if isinstance(v, list) else v) for k, v in r.items()}}
                for s, r in result["per_species"].items()]
        rows.append({"species": "mean", "auc": result["mean_auc"], "ap": result["mean_ap"],
                     "n_sites": result["n_sites"]})
        with atomic_path(out) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
    else:
        atomic_write_json(out, result)
    return out


def evaluate_run(run_dir: str | Path, pa_paths: Sequence[str | Path], out: str | Path, *,
                 env_paths: Sequence[str | Path] = (), species_col: str = "species", group_col: str | None = None,
                 lon_col: str = "lon", lat_col: str = "lat", crs: str | None = None, site_col: str | None = None,
                 date_col: str | None = None, warnings: list[str] | None = None) -> dict[str, Any]:
    """Score the SDM of ``run_dir`` on PA sites and write the per-species result to ``out``.

    Args:
        run_dir: an SDM run (or its ``model/``).
        pa_paths: PA tables (long or wide).
        out: ``.json`` or ``.csv`` file to write.
        env_paths: covariate tables, one per PA table (same sites, row for row), or none.
        species_col: species column of long tables.
        group_col: survey-group column of the sites, or None.
        lon_col: longitude column.
        lat_col: latitude column.
        crs: CRS of the coordinates (reprojected to degrees), or None.
        site_col: site id column (long tables; checks the env rows).
        date_col: date column, used when present.
        warnings: collects unseen categorical levels.

    Returns:
        The result written (plus ``run``, ``pa``, ``group_col``).

    Raises:
        CheckpointError: no SDM at ``run_dir``.
        DatasetError, ConfigError, CoordinateError: bad tables or flags.
    """
    fitted = FittedSDM.load(run_dir)
    sites = read_sites(pa_paths, env_paths, lon_col=lon_col, lat_col=lat_col, crs=crs, site_col=site_col)
    source = ",".join(map(str, pa_paths))
    result = score_sites(fitted, sites, source, species_col=species_col, group_col=group_col, lon_col=lon_col,
                         lat_col=lat_col, site_col=site_col, date_col=date_col, warnings=warnings)
    result.update({"run": str(run_dir), "pa": [str(p) for p in pa_paths], "group_col": group_col,
                   "model": fitted.kind})
    write_evaluation(out, result)
    return result
