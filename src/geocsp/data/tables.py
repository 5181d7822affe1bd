"""The one table reader and writer: CSV / CSV.gz / Parquet files, their columns and errors.

Every table geocsp reads goes through :func:`read_raw_table` (in CSV only empty cells are
missing; "NA" is text). Point files have ``lon``, ``lat`` columns in degrees, validated once
by :func:`table_lonlat` (:func:`geocsp.coords.validate_lonlat`); outputs are written
atomically, by suffix, and never over an existing output unless asked (:func:`refuse_existing`).
Errors are one :class:`~geocsp.errors.DatasetError` line ``source:row:column: message`` (rows
count from 0, the header excluded); a column named twice in the header is refused.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # no stubs; pandas reads Parquet with it

from geocsp.coords import validate_lonlat
from geocsp.errors import ConfigError, DatasetError, MissingFileError
from geocsp.io import atomic_path

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
"""Suffixes :func:`write_table` accepts."""

PARQUET_SUFFIXES = (".parquet", ".pq")
"""Suffixes :func:`read_raw_table` reads as Parquet."""

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
"""Suffixes :func:`read_raw_table` reads as delimited text (``.gz`` decompressed)."""

TEXT_COLUMNS: Mapping[str, str] = {"label": "string", "image": "string", "date": "string"}
"""CSV columns of the geocsp format read as text (class names such as "007" stay text)."""

SNIFFED_SEPARATORS = (",", ";", "\t")
"""Delimiters :func:`read_raw_table` chooses from with ``sep=None``."""


def err(source: Any, message: str, *, row: int | None = None, column: str | None = None) -> DatasetError:
    """A one-line DatasetError ``source:row:column: message`` (missing parts omitted).

    Args:
        source: the file or split named first.
        message: what is wrong.
        row: 0-based data row, or None.
        column: column name, or None.

    Returns:
        The error (to raise).
    """
    where = str(source) + (f":{row}" if row is not None else "") + (f":{column}" if column is not None else "")
    return DatasetError(f"{where}: {message}")


def show(value: Any) -> str:
    """The repr of a cell value for messages (numpy scalars shown as plain Python values).

    Args:
        value: a cell value.

    Returns:
        Its repr.
    """
    return repr(value.item() if isinstance(value, np.generic) else value)


def require_file(path: Path) -> None:
    """Refuse a path that is not an existing file.

    Args:
        path: the file.

    Raises:
        MissingFileError: ``path: file not found``.
    """
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")


def _table_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def _sniff_separator(path: Path) -> str:
    """The most frequent of :data:`SNIFFED_SEPARATORS` in the header line (``,`` on a tie)."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        head = f.readline()
    return max(SNIFFED_SEPARATORS, key=head.count)


def read_raw_table(
    path: str | Path, *, sep: str | None = ",", text_columns: Mapping[str, str] | None = TEXT_COLUMNS
) -> pd.DataFrame:
    """Read a Parquet (``.parquet``, ``.pq``) or CSV (``.csv``, ``.csv.gz``...) table as stored.

    In CSV only empty cells are missing ("NA", "null"... are text).

    Args:
        path: the file.
        sep: CSV delimiter; None picks the most frequent of ``,`` ``;`` tab in the header
            line (``,`` on a tie).
        text_columns: CSV columns read as text (name -> pandas dtype); None infers all types.

    Returns:
        The table, columns as stored (possibly empty).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when the file is not a readable table, has another suffix or names a
            column twice (``FILE: column 'lon' appears 2 times``).
    """
    p = Path(path)
    require_file(p)
    kind = _table_kind(p)
    if kind is None:
        raise err(p, "unsupported table format; expected .parquet or .csv")
    try:
        if kind == "parquet":
            _refuse_duplicates(p, pq.read_schema(p).names)
            return pd.read_parquet(p)
        delimiter = _sniff_separator(p) if sep is None else sep
        head = pd.read_csv(p, sep=delimiter, header=None, nrows=1, dtype=str, keep_default_na=False)
        _refuse_duplicates(p, head.iloc[0].tolist())
        dtype = None if text_columns is None else dict(text_columns)
        return pd.read_csv(p, sep=delimiter, keep_default_na=False, na_values=[""], dtype=dtype)
    except DatasetError:
        raise
    except Exception as e:  # pyarrow/pandas raise many types for corrupt input
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise err(p, f"unreadable {kind} table ({type(e).__name__}: {first[:120]})") from None


def _refuse_duplicates(p: Path, header: list[Any]) -> None:
    """Refuse a header naming a column twice (pandas would rename the second ``lon`` to ``lon.1``)."""
    name, count = next(((n, c) for n, c in Counter(map(str, header)).items() if c > 1 and n), (None, 0))
    if name is not None:
        raise err(p, f"column {name!r} appears {count} times; expected unique column names")


def open_table(
    path: str | Path, *, sep: str | None = ",", text_columns: Mapping[str, str] | None = TEXT_COLUMNS
) -> pd.DataFrame:
    """:func:`read_raw_table`, refusing an empty table; column names become strings.

    Args:
        path: the file.
        sep: CSV delimiter, as in :func:`read_raw_table`.
        text_columns: CSV columns read as text, as in :func:`read_raw_table`.

    Returns:
        The table (at least one row).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is not a readable table or has no row.
    """
    p = Path(path)
    table = read_raw_table(p, sep=sep, text_columns=text_columns)
    if len(table) == 0:
        raise err(p, "empty table; expected at least one row")
    table.columns = [str(c) for c in table.columns]
    return table


def available_columns(table: pd.DataFrame) -> str:
    """The table's column names for messages.

    Args:
        table: any table.

    Returns:
        ``"a, b, c"``, or ``"(none)"``.
    """
    return ", ".join(map(str, table.columns)) or "(none)"


def require_column(table: pd.DataFrame, source: Any, col: str, option: str) -> None:
    """Refuse a table lacking ``col``; the message names the option and lists the columns.

    Args:
        table: the table.
        source: file named in the message.
        col: the required column.
        option: the option that named it (``--lon-col``...).

    Raises:
        DatasetError: ``source:col: column 'col' (option) not found; available columns: ...``.
    """
    if col not in table.columns:
        raise err(source, f"column '{col}' ({option}) not found; available columns: {available_columns(table)}", column=col)


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


def table_lonlat(table: pd.DataFrame, source: str, *, wrap: bool = False) -> np.ndarray:
    """(N, 2) float64 longitude, latitude in degrees from the ``lon``/``lat`` columns.

    Empty cells become NaN (a missing location).

    Args:
        table: N rows with ``lon`` and ``lat`` columns (numbers or numeric text).
        source: file or split named in messages.
        wrap: wrap longitudes outside [-180, 180] instead of refusing them.

    Returns:
        (N, 2) float64 longitude, latitude in degrees; NaN rows are missing.

    Raises:
        DatasetError: on a missing column or a non-numeric cell.
        CoordinateError: on out-of-range, half-missing or swapped coordinates.
    """
    cols = []
    for col in ("lon", "lat"):
        if col not in table.columns:
            raise err(source, f"missing column; available columns: {available_columns(table)}", column=col)
        cols.append(numeric_cells(table[col], source, col, "degrees"))
    return validate_lonlat(np.stack(cols, axis=1), wrap=wrap, allow_missing=True, source=source)


def numeric_cells(raw: pd.Series, source: Any, column: str, expected: str = "a number") -> np.ndarray:
    """(N,) float64 values of a column of numbers or numeric text; only empty cells become NaN.

    Args:
        raw: (N,) cells (numbers, numeric text, None / NaN / "" for missing).
        source: file or split named in messages.
        column: the column named in messages.
        expected: what a cell should be (``"degrees"``).

    Returns:
        (N,) float64 values, NaN where the cell is empty.

    Raises:
        DatasetError: ``source:row:column: not a number: 'north'; expected degrees``.
    """
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan)
    num = pd.to_numeric(raw, errors="coerce")
    empty = raw.isna() | (raw.astype("string").str.strip() == "").fillna(True)
    bad = num.isna().to_numpy() & ~empty.to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise err(source, f"not a number: {show(raw.iloc[i])}; expected {expected}", row=i, column=column)
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


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


def encode_labels(series: pd.Series, classes: list[str], source: str) -> np.ndarray:
    """Map class-name labels to (N,) int64 indices into ``classes``; empty = -1.

    Args:
        series: (N,) label column.
        classes: class names in index order.
        source: file or split named in messages.

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
            f"unknown class {s.iloc[int(idx[0])]!r}{more}; expected a name from the "
            f"manifest classes ({len(classes)} classes)",
            row=int(idx[0]),
            column="label",
        )
    codes[missing] = -1
    return codes


def read_points(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV/Parquet table with ``lon``, ``lat`` columns.

    Args:
        path: the file.

    Returns:
        (the table with validated ``lon``/``lat`` columns, (N, 2) longitude, latitude in degrees).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is not a readable table or lacks the columns.
        CoordinateError: on invalid or swapped coordinates (source = the file name).
    """
    p = Path(path)
    table = open_table(p)
    require_column(table, p, "lon", "--lon-col")
    require_column(table, p, "lat", "--lat-col")
    lonlat = table_lonlat(table, str(p))
    table["lon"], table["lat"] = lonlat[:, 0], lonlat[:, 1]
    table = table.reset_index(drop=True)
    return table, table[["lon", "lat"]].to_numpy(dtype=np.float64)


def refuse_existing(path: str | Path, overwrite: bool, option: str = "--out") -> Path:
    """Refuse an output that exists (an empty directory excepted) unless ``overwrite``.

    Args:
        path: the output file or directory.
        overwrite: allow replacing it.
        option: the option that named it, for the message.

    Returns:
        The path.

    Raises:
        ConfigError: ``path: exists; pass --overwrite to replace it or choose another --out``.
    """
    p = Path(path)
    if p.exists() and not overwrite and not (p.is_dir() and not any(p.iterdir())):  # an empty dir is free
        raise ConfigError(f"{p}: exists; pass --overwrite to replace it or choose another {option}")
    return p


def write_table(df: pd.DataFrame, out: str | Path) -> Path:
    """Write ``df`` to ``.csv`` or ``.parquet`` atomically (by suffix).

    Args:
        df: the table.
        out: the output path.

    Returns:
        The path written.

    Raises:
        ConfigError: on another suffix.
    """
    p = Path(out)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"{p}: output must end in .csv or .parquet")
    with atomic_path(p) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return p
