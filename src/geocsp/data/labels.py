"""Class-label columns: the ordered class list, labels as text, labels as class indices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geocsp.data.table_formats import err


def check_classes(classes: Any, source: str) -> list[str]:
    """Validate the ordered class list: unique, non-empty strings.

    Args:
        classes: the candidate list.
        source: file named in messages.

    Returns:
        The classes as a list.

    Raises:
        DatasetError: on a non-list, an empty name or a duplicate.
    """
    if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
        raise err(source, "classes must be a list of class-name strings", column="classes")
    seen: set[str] = set()
    for i, c in enumerate(classes):
        if not c:
            raise err(source, f"class {i} has an empty name", column="classes")
        if c in seen:
            raise err(source, f"duplicate class name {c!r} at position {i}", column="classes")
        seen.add(c)
    return list(classes)


def label_strings(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Labels as strings (integral floats such as 3.0 become "3") and their missing mask.

    Args:
        series: (N,) label column.

    Returns:
        (the (N,) string labels, the (N,) bool mask of empty/missing labels).
    """
    s = series
    if pd.api.types.is_float_dtype(s):
        vals = s.dropna().to_numpy()
        if len(vals) and np.all(np.mod(vals, 1) == 0):
            s = s.astype("Int64")
    s = s.astype("string")
    missing = (s.isna() | (s.str.len() == 0)).to_numpy(dtype=bool, na_value=True)
    return s, missing


MISSING_TEXTS = frozenset({"nan", "na", "n/a", "<na>", "none", "null"})
"""Label texts (case-insensitive) that other tools write for a missing value: R's ``NA``,
pandas' ``nan`` / ``<NA>`` / ``None``, SQL's ``NULL``."""


def text_cells(series: pd.Series) -> pd.Series:
    """Cells as stripped text, a missing cell as ``""`` (integral floats such as 3.0 as "3").

    ``series.astype(str)`` is not that: pandas >= 3 keeps NaN through it, so a missing cell
    is a float NaN that no text comparison matches.

    Args:
        series: (N,) column of any dtype.

    Returns:
        (N,) object column of ``str``, same index.
    """
    s, missing = label_strings(series)
    return s.str.strip().astype(object).where(~missing, "")


def _missing_as_text(cells: pd.Series) -> np.ndarray:
    """(N,) bool: a :func:`text_cells` cell that is one of :data:`MISSING_TEXTS` (any case)."""
    return cells.str.lower().isin(MISSING_TEXTS).to_numpy(dtype=bool)


def is_missing_text(values: pd.Series) -> np.ndarray:
    """(N,) bool: the text cell is empty or a missing value written as text (:data:`MISSING_TEXTS`)."""
    t = text_cells(values)
    return t.eq("").to_numpy(dtype=bool) | _missing_as_text(t)


def refuse_missing_as_text(series: pd.Series, source: str, column: str) -> None:
    """Refuse labels such as ``NA`` or ``nan``: a missing value written as text, not a class.

    Taken as class names, they would gather every unlabelled row of an R or pandas export
    into one spurious class. A class really named so is listed in a ``--classes`` file,
    which skips this check.

    Args:
        series: (N,) label column.
        source: file named in messages.
        column: the label column's name in ``source``.

    Raises:
        DatasetError: naming the first such row, the value and the count.
    """
    cells = text_cells(series)
    bad = _missing_as_text(cells)
    if bad.any():
        idx = np.flatnonzero(bad)
        value = cells.iloc[int(idx[0])]
        raise err(source, f"label {value!r} ({len(idx)} such rows) reads as a missing value written as text; leave "
                          f"the cell empty for a row without a label, or list {value!r} in a --classes file "
                          "to keep it as a class", row=int(idx[0]), column=column)


def encode_labels(series: pd.Series, classes: list[str], source: str, column: str = "label",
                  classes_from: str = "the manifest classes") -> np.ndarray:
    """Map class-name labels to (N,) int64 indices into ``classes``; empty = -1.

    Args:
        series: (N,) label column.
        classes: class names in index order.
        source: file or split named in messages.
        column: the label column's name in ``source`` (named in messages).
        classes_from: where ``classes`` came from (named in messages).

    Returns:
        (N,) int64 class indices, -1 for unlabelled rows.

    Raises:
        DatasetError: naming the first row whose label is not a class.
    """
    s, missing = label_strings(series)
    names = s.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]  # pandas-stubs lack na_value=None
    codes = pd.Index(classes).get_indexer(names)
    codes = codes.astype(np.int64)
    unknown = (codes < 0) & ~missing
    if unknown.any():
        idx = np.flatnonzero(unknown)
        more = f" ({len(idx)} rows in all)" if len(idx) > 1 else ""
        raise err(
            source,
            f"unknown class {s.iloc[int(idx[0])]!r}{more}; expected a name from "
            f"{classes_from} ({len(classes)} classes)",
            row=int(idx[0]),
            column=column,
        )
    codes[missing] = -1
    return codes
