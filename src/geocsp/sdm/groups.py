"""Survey groups and presence/absence sites: score each species only where it was surveyed.

The literature's protocol for presence-only SDMs tested on presence/absence surveys
(Valavi et al. 2022, ``../shared/data/disdat_dev/README.md``): a species is scored only on
the sites of its own survey group (a bird is never scored on plant sites). Two site layouts:

* **wide** -- one 0/1 column per species (the disdat ``test_pa_<group>`` files): a species is
  scored on the rows where its column has a value; tables of several groups stacked
  together leave other groups' columns empty, so their sites are not scored;
* **long** -- one row per (site, recorded species), the ``species`` column
  (:func:`geocsp.sdm.cv.pa_sites`): every site counts as surveyed for every species.

With a group column (``--group-col``) a species is further scored only on sites whose group
is one of its groups: those stored with the run (``sdm fit --group-col``), else the groups of
the sites where the table records it present (long) or where its column has a value (wide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geocsp.data.labels import text_cells
from geocsp.data.tables import available_columns
from geocsp.errors import ConfigError, DatasetError
from geocsp.sdm.cv import pa_sites
from geocsp.sdm.metrics import per_species_scores, summarize


def species_groups(df: pd.DataFrame, species_col: str, group_col: str, source: str) -> dict[str, list[str]]:
    """Each species' survey groups in a records table (sorted; empty cells ignored).

    Args:
        df: records with a species and a group column.
        species_col: species column.
        group_col: group column.
        source: file name for messages.

    Returns:
        species -> sorted groups.

    Raises:
        DatasetError: a missing group column.
    """
    if group_col not in df.columns:
        raise DatasetError(f"{source}: group column '{group_col}' (--group-col) not found; "
                           f"available columns: {available_columns(df)}")
    g = text_cells(df[group_col])
    ok = (g != "").to_numpy()
    sp = text_cells(df[species_col])
    out: dict[str, set[str]] = {}
    for s, grp in zip(sp[ok], g[ok], strict=True):
        out.setdefault(s, set()).add(grp)
    return {s: sorted(v) for s, v in out.items()}


@dataclass
class SiteTable:
    """Presence/absence sites of a model's Q species.

    Attributes:
        sites: one row per site (coordinates, covariates, group...).
        y: (S, Q) 0/1 presence.
        scored: (S, Q) bool, True where the site counts for the species.
    """

    sites: pd.DataFrame
    y: np.ndarray
    scored: np.ndarray


def _wide_values(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    """A wide 0/1 column as float (NaN = not surveyed); anything else is refused."""
    v = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
    bad = (df[col].notna().to_numpy() & np.isnan(v)) | (np.isfinite(v) & (v != 0) & (v != 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{source}:{i}:{col}: expected 0, 1 or empty, got {df[col].iloc[i]!r}")
    return v


def site_table(df: pd.DataFrame, species: list[str], source: str, *, species_col: str = "species",
               group_col: str | None = None, groups: dict[str, list[str]] | None = None,
               lon_col: str = "lon", lat_col: str = "lat", site_col: str | None = None) -> SiteTable:
    """The sites, presence matrix and scored mask of a PA table (module docstring).

    Args:
        df: the PA table, long (has ``species_col``) or wide (columns named by species).
        species: the model's Q species.
        source: file name for messages.
        species_col: species column of a long table.
        group_col: group column of the sites, or None.
        groups: species -> groups from the run; None derives them from the table.
        lon_col: longitude column (long tables: a site is a distinct lon/lat).
        lat_col: latitude column.
        site_col: site id column of a long table (default: distinct lon/lat).

    Returns:
        The site table.

    Raises:
        DatasetError: a wide table naming none of the species, a bad 0/1 cell, a missing
            group column.
    """
    if species_col in df.columns:
        sites, y = pa_sites(df, species_col, species, lon_col, lat_col, site_col, source)
        scored = np.ones_like(y, dtype=bool)
        if group_col is not None and groups is None:
            _require(sites, group_col, source)
            g = text_cells(sites[group_col]).to_numpy()
            groups = {s: sorted(set(g[y[:, j] > 0].tolist())) for j, s in enumerate(species)}
    else:
        cols = [s for s in species if s in df.columns]
        if not cols:
            shown = ", ".join(species[:5]) + (" ..." if len(species) > 5 else "")
            raise DatasetError(f"{source}: no '{species_col}' column and no column named after a model species "
                               f"({shown}); expected a long or a wide presence/absence table")
        sites = df.reset_index(drop=True)
        y = np.zeros((len(df), len(species)))
        scored = np.zeros_like(y, dtype=bool)
        for j, s in enumerate(species):
            if s in df.columns:
                v = _wide_values(df, s, source)
                scored[:, j] = np.isfinite(v)
                y[:, j] = np.nan_to_num(v)
        if group_col is not None and groups is None:
            _require(sites, group_col, source)
            g = text_cells(sites[group_col]).to_numpy()
            groups = {s: sorted(set(g[scored[:, j]].tolist())) for j, s in enumerate(species)}
    if group_col is not None:
        assert groups is not None
        _require(sites, group_col, source)
        scored &= group_mask(sites[group_col], species, groups)
    return SiteTable(sites, y, scored)


def _require(df: pd.DataFrame, col: str, source: str) -> None:
    if col not in df.columns:
        raise DatasetError(f"{source}: group column '{col}' (--group-col) not found; "
                           f"available columns: {available_columns(df)}")


def group_mask(site_groups: pd.Series, species: list[str], groups: dict[str, list[str]]) -> np.ndarray:
    """(S, Q) bool: site s is in one of species q's groups (species without groups: never)."""
    g = text_cells(site_groups).to_numpy()
    return np.stack([np.isin(g, groups.get(s, [])) for s in species], axis=1) if species else np.zeros((len(g), 0), bool)


def run_groups(options: dict, option: str = "--group-col") -> dict[str, list[str]]:
    """The species groups stored with a run (``sdm fit --group-col``).

    Raises:
        ConfigError: the run was fitted without groups.
    """
    groups = options.get("groups")
    if not groups:
        raise ConfigError(f"{option}: this run has no species groups; fit it with --group-col")
    return {str(k): [str(x) for x in v] for k, v in groups.items()}


def evaluate_sites(table: SiteTable, scores: np.ndarray, species: list[str],
                   groups: dict[str, list[str]] | None = None) -> dict:
    """AUC/AP of each species on its scored sites, with the means over species.

    Args:
        table: the sites (``y``, ``scored``).
        scores: (S, Q) predicted scores.
        species: the Q names.
        groups: species -> groups, recorded per species when given.

    Returns:
        ``{"per_species": {name: {auc, ap, n_pos, n_neg, n_sites[, groups]}}, "mean_auc",
        "mean_ap", "n_species_scored", "n_species", "n_sites"}``; a species with no presence or
        no absence among its sites gets NaN and is left out of the means.
    """
    per = {}
    for j, s in enumerate(species):
        m = table.scored[:, j]
        row: dict[str, Any] = dict(per_species_scores(table.y[m, j : j + 1], scores[m, j : j + 1], [s])[s])
        row["n_sites"] = int(m.sum())
        if groups is not None:
            row["groups"] = groups.get(s, [])
        per[s] = row
    return {**summarize(per), "per_species": per, "n_sites": len(table.y)}
