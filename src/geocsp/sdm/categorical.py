"""Categorical covariates: one-hot encoding, the unseen-level rule, integer-code warnings.

A column declared categorical (``--categorical vegsys``) is read as text (``3`` and
``3.0`` are the same level) and replaced by one 0/1 column per level seen in the fitting
data (presences and background), named ``vegsys=3``; the levels are stored with the model.

Rules (docs/sdm.md):

* **a level never seen in fitting** (at prediction or evaluation): the row gets all-zero
  one-hot columns for that covariate -- "none of the known levels" -- and the caller emits
  one warning line naming the column and the unseen levels (with their row count);
* **an empty cell** in a categorical column: the row is dropped in fitting (like any
  missing covariate) and refused at prediction (one line naming row and column);
* **an undeclared covariate that looks categorical** -- only integers, at most
  :data:`MAX_CODE_LEVELS` distinct values -- gets one warning line suggesting
  ``--categorical`` (integer codes are never silently treated as quantities).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from geocsp.errors import ConfigError, DatasetError

MAX_CODE_LEVELS = 12
"""An integer column with at most this many distinct values looks like category codes."""

SEP = "="
"""One-hot column name: ``<column>=<level>``."""


def _level(v: object) -> object:
    """One cell as a level string (NaN when empty)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return np.nan
    text = str(v).strip()
    if not text:
        return np.nan
    try:
        x = float(text)
    except ValueError:
        return text
    return str(int(x)) if np.isfinite(x) and x == round(x) else text


def level_strings(values: pd.Series) -> pd.Series:
    """Cells as level strings: ``3``, ``3.0`` and `` 3 `` -> ``"3"``; empty/NaN -> NaN."""
    return pd.Series([_level(v) for v in values], index=values.index, dtype=object)


def fit_levels(tables: Iterable[pd.DataFrame], columns: tuple[str, ...], source: str) -> dict[str, list[str]]:
    """The sorted levels of each categorical column over the fitting tables.

    Args:
        tables: fitting tables (records, background) that hold the columns.
        columns: the declared categorical columns.
        source: file name for messages.

    Returns:
        column -> sorted levels (numeric codes in numeric order).

    Raises:
        DatasetError: a column missing from every table, or with no value at all.
    """
    out: dict[str, list[str]] = {}
    tables = list(tables)
    for col in columns:
        seen: set[str] = set()
        found = False
        for t in tables:
            if col in t.columns:
                found = True
                seen.update(str(v) for v in level_strings(t[col]).dropna())
        if not found:
            raise DatasetError(f"{source}: categorical column '{col}' (--categorical) not found")
        if not seen:
            raise DatasetError(f"{source}: categorical column '{col}' has no value")
        out[col] = sorted(seen, key=lambda v: (0, float(v), v) if _is_number(v) else (1, 0.0, v))
    return out


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def onehot_names(levels: dict[str, list[str]]) -> list[str]:
    """Covariate names of the one-hot columns, column by column, level by level."""
    return [f"{col}{SEP}{lv}" for col, lvs in levels.items() for lv in lvs]


def expand(df: pd.DataFrame, levels: dict[str, list[str]], source: str, *,
           refuse_empty: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Add the one-hot columns of ``levels`` to a copy of ``df``.

    Args:
        df: a table holding every categorical column.
        levels: column -> known levels (from :func:`fit_levels` or a model).
        source: file name for messages.
        refuse_empty: refuse an empty cell (prediction) instead of leaving NaN (fitting
            drops such rows).

    Returns:
        (the table with ``col=level`` columns, warning lines for unseen levels).

    Raises:
        DatasetError: a missing categorical column, or (``refuse_empty``) an empty cell.
    """
    out = df.copy()
    warnings = []
    for col, lvs in levels.items():
        if col not in df.columns:
            raise DatasetError(f"{source}: missing categorical column '{col}' required by the model; "
                               f"available columns: {', '.join(map(str, df.columns))}")
        lv = level_strings(df[col])
        empty = lv.isna().to_numpy()
        if refuse_empty and empty.any():
            raise DatasetError(f"{source}:{int(np.flatnonzero(empty)[0])}:{col}: empty categorical cell")
        unseen = ~empty & ~lv.isin(lvs).to_numpy()
        if unseen.any():
            new = sorted({str(v) for v in lv[unseen]})
            shown = ", ".join(new[:5]) + (" ..." if len(new) > 5 else "")
            warnings.append(f"{source}: column '{col}': {int(unseen.sum())} rows have levels never seen in fitting "
                            f"({shown}); their one-hot columns are all zero")
        for level in lvs:
            val = (lv == level).to_numpy(dtype=np.float64)
            val[empty] = np.nan
            out[f"{col}{SEP}{level}"] = val
    return out, warnings


def looks_categorical(df: pd.DataFrame, columns: Iterable[str], source: str) -> list[str]:
    """Warning lines for numeric covariate columns that look like integer category codes.

    Args:
        df: the fitting table.
        columns: undeclared (numeric) covariate columns.
        source: file name for messages.

    Returns:
        One line per column holding only integers with at most :data:`MAX_CODE_LEVELS` values.
    """
    lines = []
    for col in columns:
        if col not in df.columns:
            continue
        v = pd.to_numeric(df[col], errors="coerce").dropna().to_numpy(float)
        u = np.unique(v)
        if 1 < len(u) <= MAX_CODE_LEVELS and np.all(u == np.round(u)):
            shown = ", ".join(f"{x:g}" for x in u[:6]) + (" ..." if len(u) > 6 else "")
            lines.append(f"{source}: covariate '{col}' holds only {len(u)} distinct integers ({shown}); "
                         f"if they are category codes, declare it with --categorical {col}")
    return lines


def check_declared(categorical: tuple[str, ...], covariates: tuple[str, ...]) -> tuple[str, ...]:
    """The numeric covariates: ``covariates`` without the categorical ones.

    Raises:
        ConfigError: a column declared categorical twice.
    """
    dup = {c for c in categorical if categorical.count(c) > 1}
    if dup:
        raise ConfigError(f"records.categorical names '{sorted(dup)[0]}' twice")
    return tuple(c for c in covariates if c not in categorical)
