"""The one table reader and writer: its entry points, columns and errors.

Every table geocsp reads goes through :func:`read_raw_table`: CSV / CSV.gz (only empty cells
are missing; "NA" is text), Parquet, GeoParquet and GeoJSON points (formats in
:mod:`geocsp.data.table_formats`). Point files have longitude/latitude columns (``lon``,
``lat`` unless named otherwise, or a point geometry), optionally in a projected CRS
(``--crs``), turned once into (lon, lat) degrees and validated by :func:`table_lonlat`
(:func:`geocsp.coords.validate_lonlat`); outputs are written atomically, by suffix, and
never over an existing output unless asked (:func:`refuse_existing`). Errors are one
:class:`~geocsp.errors.DatasetError` line ``source:row:column: message`` (rows count from 0,
the header excluded); a column named twice in the header is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geocsp.coords import validate_lonlat
from geocsp.crs import to_lonlat
from geocsp.data.table_formats import (
    err,
    has_geometry,
    read_table_file,
    require_file,
    show,
    table_kind,
    write_table_file,
)
from geocsp.errors import ConfigError

TEXT_COLUMNS: Mapping[str, str] = {"label": "string", "image": "string", "date": "string"}
"""CSV columns of the geocsp format read as text (class names such as "007" stay text)."""


def read_raw_table(
    path: str | Path, *, sep: str | None = ",", text_columns: Mapping[str, str] | None = TEXT_COLUMNS,
    crs: str | None = None,
) -> pd.DataFrame:
    """Read a CSV, CSV.gz, Parquet, GeoParquet or GeoJSON table as stored.

    In CSV only empty cells are missing ("NA", "null"... are text). GeoParquet and GeoJSON
    point geometries become ``lon``, ``lat`` degree columns (first), the geometry is dropped.

    Args:
        path: the file (``.csv``, ``.csv.gz``, ``.tsv``, ``.parquet``, ``.pq``,
            ``.geoparquet``, ``.geojson``).
        sep: CSV delimiter; None picks the most frequent of ``,`` ``;`` tab in the header
            line (``,`` on a tie).
        text_columns: CSV columns read as text (name -> pandas dtype); None infers all types.
        crs: the CRS of a geo file's point geometries (``EPSG:28355``), overriding the
            file's own declaration; ignored for CSV and plain Parquet.

    Returns:
        The table, columns as stored (possibly empty).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when the file is not a readable table, has another suffix, names a
            column twice (``FILE: column 'lon' appears 2 times``) or holds a geometry that is
            not a point (``FILE: feature 3: geometry type 'Polygon'; ...``).
        ConfigError: on an unknown CRS.
    """
    p = Path(path)
    require_file(p)
    kind = table_kind(p)
    if kind is None:
        raise err(p, "unsupported table format; expected .csv, .csv.gz, .parquet, .geoparquet or .geojson")
    return read_table_file(p, kind, sep=sep, text_columns=text_columns, crs=crs)


def open_table(
    path: str | Path, *, sep: str | None = ",", text_columns: Mapping[str, str] | None = TEXT_COLUMNS,
    crs: str | None = None,
) -> pd.DataFrame:
    """:func:`read_raw_table`, refusing an empty table; column names become strings.

    Args:
        path: the file.
        sep: CSV delimiter, as in :func:`read_raw_table`.
        text_columns: CSV columns read as text, as in :func:`read_raw_table`.
        crs: CRS of a geo file's geometries, as in :func:`read_raw_table`.

    Returns:
        The table (at least one row).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is not a readable table or has no row.
    """
    p = Path(path)
    table = read_raw_table(p, sep=sep, text_columns=text_columns, crs=crs)
    if len(table) == 0:
        raise err(p, "empty table; expected at least one row")
    table.columns = [str(c) for c in table.columns]
    return table


def point_crs(path: Path, lon_col: str, lat_col: str, crs: str | None) -> tuple[str | None, str | None]:
    """Where ``--crs`` applies: to a geo file's geometry, or to the named columns.

    The point geometry of a GeoJSON / GeoParquet file gives the location unless other
    columns are named (``lon_col``/``lat_col`` not ``lon``/``lat``).

    Args:
        path: an existing table file.
        lon_col: the longitude (x) column asked for.
        lat_col: the latitude (y) column asked for.
        crs: the user's ``--crs`` (None: degrees, or the geometry's declared CRS).

    Returns:
        (CRS for :func:`read_raw_table`'s geometry, CRS for :func:`table_lonlat`'s columns).
    """
    if (lon_col, lat_col) == ("lon", "lat") and has_geometry(path):
        return crs, None
    return None, crs


def rename_columns(raw: pd.DataFrame, source: Any, named: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Rename user-named columns to geocsp's, refusing missing ones.

    A column already bearing a target name that is not itself renamed is kept as
    ``orig_<name>`` (e.g. ``label`` when ``--label-col species``).

    Args:
        raw: the table as read.
        source: file named in messages.
        named: user column -> (geocsp name, option that named it).

    Returns:
        The renamed table.

    Raises:
        DatasetError: when a named column is missing (the message lists the available ones).
    """
    for col, (_, option) in named.items():
        require_column(raw, source, col, option)
    rename = {col: new for col, (new, _) in named.items()}
    clash = {c: f"orig_{c}" for c in raw.columns if c in rename.values() and c not in rename}
    return raw.rename(columns={**clash, **rename})


def available_columns(table: pd.DataFrame) -> str:
    """The table's column names for messages.

    Args:
        table: any table.

    Returns:
        ``"a, b, c"`` (without ``__name__`` columns: geocsp's own helpers, e.g. the SDM's
        ``__species__``), or ``"(none)"``; a name with surrounding or no visible characters is
        quoted (``' lon '``), so a padded header does not read as the name asked for.
    """
    names = [str(c) for c in table.columns]
    shown = [c if c and c == c.strip() else repr(c) for c in names
             if not (len(c) > 4 and c.startswith("__") and c.endswith("__"))]
    return ", ".join(shown) or "(none)"


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


def table_lonlat(table: pd.DataFrame, source: str, *, wrap: bool = False, crs: str | None = None) -> np.ndarray:
    """(N, 2) float64 longitude, latitude in degrees from the ``lon``/``lat`` columns.

    Empty cells become NaN (a missing location).

    Args:
        table: N rows with ``lon`` and ``lat`` columns (numbers or numeric text).
        source: file or split named in messages.
        wrap: wrap longitudes outside [-180, 180] instead of refusing them.
        crs: the columns' CRS (``EPSG:28355``: x, y in metres), reprojected with
            :func:`geocsp.crs.to_lonlat`; None = degrees.

    Returns:
        (N, 2) float64 longitude, latitude in degrees; NaN rows are missing.

    Raises:
        DatasetError: on a missing column, a non-numeric cell or a point outside ``crs``'s domain.
        CoordinateError: on out-of-range, half-missing or swapped coordinates.
        ConfigError: on an unknown ``crs``.
    """
    expected = "degrees" if crs is None else f"a coordinate in {crs}"
    cols = []
    for col in ("lon", "lat"):
        if col not in table.columns:
            raise err(source, f"missing column; available columns: {available_columns(table)}", column=col)
        cols.append(numeric_cells(table[col], source, col, expected))
    lonlat = to_lonlat(cols[0], cols[1], crs)
    lost = np.isfinite(np.stack(cols, axis=1)).all(axis=1) & np.isnan(lonlat).any(axis=1)
    if lost.any():
        i = int(np.flatnonzero(lost)[0])
        raise err(source, f"point ({cols[0][i]}, {cols[1][i]}) is outside the domain of {crs}; is --crs right?", row=i)
    return validate_lonlat(lonlat, wrap=wrap, allow_missing=True, source=source)


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
    # per-cell type test only where pandas' C-level inference saw a boolean (not for plain text columns)
    mixed = raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) in ("boolean", "mixed")
    is_bool = raw.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool) if mixed else None
    if pd.api.types.is_bool_dtype(raw) or (is_bool is not None and is_bool.any()):
        i = int(np.flatnonzero(is_bool if is_bool is not None else raw.notna().to_numpy())[:1].sum())
        raise err(source, f"not a number: {show(raw.iloc[i])} (a boolean column); expected {expected}",
                  row=i, column=column)
    if pd.api.types.is_numeric_dtype(raw):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan)
    num = pd.to_numeric(raw, errors="coerce")
    empty = raw.isna() | (raw.astype("string").str.strip() == "").fillna(True)
    bad = num.isna().to_numpy() & ~empty.to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise err(source, f"not a number: {show(raw.iloc[i])}; expected {expected}", row=i, column=column)
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def read_points(
    path: str | Path, *, lon_col: str = "lon", lat_col: str = "lat", crs: str | None = None, wrap: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """A table of points: CSV/Parquet columns, or GeoParquet/GeoJSON point geometries.

    Args:
        path: the file (any :func:`read_raw_table` format).
        lon_col: column of longitudes (or x in ``crs``); renamed ``lon``. A geo file's
            geometry is used when both columns keep their defaults.
        lat_col: column of latitudes (or y in ``crs``); renamed ``lat``.
        crs: the points' CRS (``EPSG:28355``), reprojected to lon/lat degrees; None =
            degrees (or a geo file's declared CRS).
        wrap: wrap longitudes outside [-180, 180] instead of refusing them.

    Returns:
        (the table with validated ``lon``/``lat`` degree columns — a column already called
        ``lon`` that was not ``lon_col`` is kept as ``orig_lon`` —, (N, 2) longitude,
        latitude in degrees).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is not a readable table or lacks the columns (the message names
            ``--lon-col`` / ``--lat-col``).
        CoordinateError: on invalid or swapped coordinates (source = the file name).
        ConfigError: on an unknown ``crs``.
    """
    p = Path(path)
    geometry_crs, column_crs = point_crs(p, lon_col, lat_col, crs) if p.is_file() else (None, crs)
    raw = open_table(p, sep=None, crs=geometry_crs)  # `,` `;` or tab, as the header shows
    table = rename_columns(raw, p, {lon_col: ("lon", "--lon-col"), lat_col: ("lat", "--lat-col")})
    lonlat = table_lonlat(table, str(p), wrap=wrap, crs=column_crs)
    table["lon"], table["lat"] = lonlat[:, 0], lonlat[:, 1]
    table = table.reset_index(drop=True)
    return table, lonlat


def refuse_existing(path: str | Path, overwrite: bool, option: str = "--out",
                    inputs: Iterable[str | Path | None] = (), *, file: bool = False) -> Path:
    """Refuse an existing output unless ``overwrite``, and an input as output always.

    An empty directory is free; an output that is one of the command's input files is
    refused even with ``overwrite``.

    Args:
        path: the output file or directory.
        overwrite: allow replacing it.
        option: the option that named it, for the message.
        inputs: the files the command reads (None entries are skipped); writing over one of
            them (the same file, through any path or hard link) would lose it.
        file: the output is a file, so a directory at ``path`` is refused even with ``overwrite``.

    Returns:
        The path.

    Raises:
        ConfigError: ``path: exists; pass --overwrite to replace it or choose another --out``,
            or ``path: is the input ...; choose another --out``.
    """
    p = Path(path)
    exists = p.exists() or p.is_symlink()  # a dangling symlink is something there too
    if file and p.is_dir():
        raise ConfigError(f"{p}: is a directory; expected a file path for {option}")
    for src in inputs:
        if src is not None and p.is_file() and Path(src).is_file() and os.path.samefile(p, src):
            raise ConfigError(f"{p}: is the input {src}; writing the results there would replace it, "
                              f"choose another {option}")
    if exists and not overwrite and not (p.is_dir() and not any(p.iterdir())):  # an empty dir is free
        raise ConfigError(f"{p}: exists; pass --overwrite to replace it or choose another {option}")
    return p


def write_table(df: pd.DataFrame, out: str | Path) -> Path:
    """Write ``df`` atomically as ``.csv``, ``.csv.gz``, ``.parquet`` or ``.geojson`` (by suffix).

    Args:
        df: the table (``lon``, ``lat`` degree columns for GeoJSON points).
        out: the output path.

    Returns:
        The path written.

    Raises:
        ConfigError: on another suffix (:data:`geocsp.data.table_formats.WRITE_SUFFIXES`).
    """
    p = Path(out)
    write_table_file(df, p)
    return p
