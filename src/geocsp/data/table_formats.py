"""Table file formats: CSV / CSV.gz, Parquet, GeoParquet and GeoJSON points, by suffix.

:func:`read_table_file` reads any of them into a DataFrame; :func:`write_table_file` writes
one. The two geo formats carry their locations as point geometries: these become ``lon``,
``lat`` columns (degrees; reprojected from the file's declared CRS, or from an explicit
``crs`` override) placed first, and the geometry column itself is dropped; a property
already called ``lon`` / ``lat`` is kept as ``orig_lon`` / ``orig_lat``. Null or empty
geometries are missing locations (NaN); any geometry that is not a point is refused, one
line naming the file, the feature (or row) and the geometry type.

* **GeoParquet**: a Parquet file whose ``geo`` metadata names the geometry column(s), WKB
  encoded (decoded by :mod:`geocsp.data.wkb`, no GIS library) or GeoArrow ``point``.
* **GeoJSON**: a ``FeatureCollection`` of ``Point`` features (``.geojson``); the properties
  become columns, a feature ``id`` becomes an ``id`` column unless a property has that name.
  Coordinates are lon, lat (RFC 7946); a legacy ``crs`` member is honoured.
"""

from __future__ import annotations

import csv
import gzip
import json
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # no stubs; pandas reads Parquet with it

from geocsp.crs import to_lonlat
from geocsp.data.wkb import wkb_points
from geocsp.errors import ConfigError, DatasetError, GeocspError, MissingFileError
from geocsp.io import atomic_path

PARQUET_SUFFIXES = (".parquet", ".pq", ".geoparquet")
"""Suffixes read as Parquet (GeoParquet when the file has ``geo`` metadata)."""

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
"""Suffixes read as delimited text (``.gz`` decompressed)."""

GEOJSON_SUFFIXES = (".geojson",)
"""Suffixes read as a GeoJSON FeatureCollection of points."""

WRITE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".geojson")
"""Suffixes :func:`write_table_file` writes (GeoJSON: points from the ``lon``/``lat`` columns)."""

SNIFFED_SEPARATORS = (",", ";", "\t")
"""Delimiters chosen from with ``sep=None``."""

LONLAT_CRS = frozenset({"OGC:CRS84", "EPSG:4326", "urn:ogc:def:crs:OGC:1.3:CRS84",
                        "urn:ogc:def:crs:EPSG::4326", "CRS84"})
"""Declared CRS names that already mean (lon, lat) degrees."""


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
        MissingFileError: ``path: file not found`` (``path: is a directory; expected a file``).
    """
    if not path.is_file():
        raise MissingFileError(f"{path}: is a directory; expected a file" if path.is_dir() else f"{path}: file not found")


def table_kind(path: Path) -> str | None:
    """``"parquet"``, ``"csv"``, ``"geojson"`` by suffix, or None.

    Args:
        path: the file.

    Returns:
        The format, or None for an unsupported suffix.
    """
    name = path.name.lower()
    for kind, suffixes in (("parquet", PARQUET_SUFFIXES), ("csv", CSV_SUFFIXES), ("geojson", GEOJSON_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


def has_geometry(path: Path) -> bool:
    """Whether the file's locations are point geometries (GeoJSON, or Parquet with ``geo`` metadata).

    Args:
        path: an existing table file.

    Returns:
        True for GeoJSON and GeoParquet.
    """
    kind = table_kind(path)
    if kind == "geojson":
        return True
    if kind != "parquet":
        return False
    try:
        return b"geo" in (pq.read_schema(path).metadata or {})
    except Exception:  # unreadable: the reader reports it
        return False


def read_table_file(path: Path, kind: str, *, sep: str | None, text_columns: Mapping[str, str] | None,
                    crs: str | None = None) -> pd.DataFrame:
    """Read one table file of a known format, columns as stored.

    Args:
        path: an existing file.
        kind: its :func:`table_kind`.
        sep: CSV delimiter; None sniffs the header line.
        text_columns: CSV columns read as text (name -> pandas dtype); None infers all.
        crs: the CRS of the point geometries, overriding the file's declaration (geo formats).

    Returns:
        The table; geo formats get ``lon``, ``lat`` degree columns first.

    Raises:
        DatasetError: on an unreadable file, a duplicated column or a non-point geometry.
        ConfigError: on an unknown CRS (or pyproj missing when one is needed).
    """
    try:
        if kind == "geojson":
            return _read_geojson(path, crs)
        if kind == "parquet":
            return _read_parquet(path, crs)
        delimiter = _sniff_separator(path) if sep is None else sep
        head = pd.read_csv(path, sep=delimiter, header=None, nrows=1, dtype=str, keep_default_na=False)
        refuse_duplicates(path, head.iloc[0].tolist())
        dtype = None if text_columns is None else dict(text_columns)
        with warnings.catch_warnings(record=True) as caught:  # index_col=False: extra fields never become the index
            warnings.simplefilter("always", pd.errors.ParserWarning)
            table = pd.read_csv(path, sep=delimiter, keep_default_na=False, na_values=[""], dtype=dtype, index_col=False)
        if any(issubclass(w.category, pd.errors.ParserWarning) and "Length of header" in str(w.message) for w in caught):
            raise err(path, f"the data rows have more fields than the header's {head.shape[1]}; expected one field "
                            "per header column (a delimiter at the end of each row?)")
        _refuse_truncated(path, delimiter, head.shape[1], len(table))
        return table
    except GeocspError:
        raise
    except UnicodeDecodeError:
        raise err(path, f"not UTF-8 text; expected a UTF-8 {kind} file (re-encode it, e.g. "
                        f"iconv -f latin1 -t utf-8 {path.name} > utf8.csv)") from None
    except Exception as e:  # pyarrow/pandas/gzip/json raise many types for corrupt input
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise err(path, f"unreadable {kind} table ({type(e).__name__}: {first[:120]})") from None


def refuse_duplicates(path: Path, header: list[Any]) -> None:
    """Refuse a header naming a column twice (pandas would rename the second ``lon`` to ``lon.1``).

    Args:
        path: the file named in the message.
        header: its column names.

    Raises:
        DatasetError: ``path: column 'lon' appears 2 times; expected unique column names``.
    """
    name, count = next(((n, c) for n, c in Counter(map(str, header)).items() if c > 1 and n), (None, 0))
    if name is not None:
        raise err(path, f"column {name!r} appears {count} times; expected unique column names")


def _refuse_truncated(path: Path, delimiter: str, fields: int, rows: int) -> None:
    """Refuse a CSV cut off inside its last row (no final newline and fewer fields than the header).

    pandas fills a short row with missing cells; a short *last* row without its newline is
    what an interrupted copy or download leaves, so it is refused instead of imported.
    """
    if rows == 0 or path.name.lower().endswith(".gz"):
        return
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        tail = f.read()
    if not tail or tail.endswith((b"\n", b"\r")):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    got = len(next(csv.reader([last], delimiter=delimiter), []))
    if got < fields:
        raise err(path, f"line {rows + 1} has {got} of {fields} fields and no final newline; "
                        f"the file looks truncated")


def _sniff_separator(path: Path) -> str:
    """The most frequent of :data:`SNIFFED_SEPARATORS` in the header line (``,`` on a tie)."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        head = f.readline()
    return max(SNIFFED_SEPARATORS, key=head.count)


def _read_parquet(path: Path, crs: str | None) -> pd.DataFrame:
    """A Parquet table; with ``geo`` metadata, its primary point geometry as lon/lat."""
    refuse_duplicates(path, pq.read_schema(path).names)
    table = pq.read_table(path)
    raw_geo = (table.schema.metadata or {}).get(b"geo")
    if raw_geo is None:
        return table.to_pandas()
    geo = json.loads(raw_geo)
    primary = geo.get("primary_column", "geometry")
    spec = geo.get("columns", {}).get(primary)
    if spec is None or primary not in table.column_names:
        raise err(path, f"GeoParquet metadata names geometry column {primary!r}, which the file lacks")
    column = table.column(primary).combine_chunks()
    encoding = str(spec.get("encoding", "WKB")).lower()
    if encoding == "wkb":
        xy = wkb_points(column.to_pylist(), str(path))
    elif encoding == "point":
        xy = np.stack([column.field(a).to_numpy(zero_copy_only=False) for a in ("x", "y")], axis=1)
        xy[np.asarray(column.is_null())] = np.nan
    else:
        raise err(path, f"geometry column {primary!r} has encoding {spec.get('encoding')!r}; expected "
                  "point geometries (WKB or GeoArrow 'point')", column=primary)
    declared = _declared_crs(spec.get("crs", "OGC:CRS84"))
    geometry_cols = [c for c in geo.get("columns", {}) if c in table.column_names]
    return _with_lonlat(table.drop(geometry_cols).to_pandas(), xy, path, crs or declared, "row")


def _declared_crs(value: Any) -> str | None:
    """A file's declared CRS (name or PROJJSON) as a pyproj input; None for lon/lat or undefined."""
    if value is None:
        return None
    if isinstance(value, dict):
        ident = value.get("id") or {}
        name = f"{ident.get('authority')}:{ident.get('code')}" if ident else json.dumps(value)
    else:
        name = str(value)
    return None if name in LONLAT_CRS else name


def _read_geojson(path: Path, crs: str | None) -> pd.DataFrame:
    """A GeoJSON FeatureCollection of Point features -> properties + lon/lat."""
    with open(path, "rb") as f:
        doc = json.load(f)
    kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
    features = doc.get("features") if isinstance(doc, dict) else None
    if kind != "FeatureCollection" or not isinstance(features, list):
        raise err(path, f"GeoJSON type {kind!r}; expected a FeatureCollection of Point features")
    xy = np.full((len(features), 2), np.nan)
    rows: list[dict[str, Any]] = []
    for i, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise err(path, f"feature {i}: not a GeoJSON Feature object")
        xy[i] = _point_xy(feature.get("geometry"), path, i)
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise err(path, f"feature {i}: properties must be an object, got {type(props).__name__}")
        row = dict(props)
        if "id" in feature and "id" not in row:
            row["id"] = feature["id"]
        rows.append(row)
    legacy = (doc.get("crs") or {}).get("properties", {}).get("name")
    table = _uniform_types(pd.DataFrame.from_records(rows, index=range(len(rows))))
    return _with_lonlat(table, xy, path, crs or _declared_crs(legacy), "feature")


def _uniform_types(df: pd.DataFrame) -> pd.DataFrame:
    """Property columns mixing value types (``7`` and ``"obs1"``) as text, so they can be written."""
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and np.isnan(v))}
            if len(kinds) > 1:
                df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
    return df


def _point_xy(geometry: Any, path: Path, i: int) -> tuple[float, float]:
    """(x, y) of a GeoJSON Point geometry; NaN for a null or empty one."""
    if geometry is None:
        return np.nan, np.nan
    kind = geometry.get("type") if isinstance(geometry, dict) else type(geometry).__name__
    if kind != "Point":
        raise err(path, f"feature {i}: geometry type {kind!r}; expected Point features "
                  "(one location per feature)")
    coords = geometry.get("coordinates")
    if coords == []:
        return np.nan, np.nan
    if (not isinstance(coords, list) or len(coords) < 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords[:2])):
        raise err(path, f"feature {i}: Point coordinates {coords!r}; expected [lon, lat] numbers")
    return float(coords[0]), float(coords[1])


def _with_lonlat(df: pd.DataFrame, xy: np.ndarray, path: Path, crs: str | None, unit: str) -> pd.DataFrame:
    """``df`` with ``lon``, ``lat`` columns first from geometry ``xy`` in ``crs`` (degrees when None)."""
    lonlat = to_lonlat(xy[:, 0], xy[:, 1], crs, source=f"{path}: CRS")
    lost = np.isfinite(xy).all(axis=1) & ~np.isfinite(lonlat).all(axis=1)
    if lost.any():
        i = int(np.flatnonzero(lost)[0])
        raise err(path, f"{unit} {i}: point {tuple(xy[i].tolist())} is outside the domain of {crs}; "
                  "is --crs right?")
    df = df.rename(columns={c: f"orig_{c}" for c in ("lon", "lat") if c in df.columns})
    df.insert(0, "lat", lonlat[:, 1])
    df.insert(0, "lon", lonlat[:, 0])
    return df


def write_table_file(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` atomically in the format of ``path``'s suffix (:data:`WRITE_SUFFIXES`).

    GeoJSON gets one Point feature per row from the ``lon``/``lat`` columns (a row without a
    location gets a null geometry); the other columns become properties.

    Args:
        df: the table (``lon``, ``lat`` degrees required for GeoJSON).
        path: the output file.

    Raises:
        ConfigError: on another suffix, or GeoJSON without ``lon``/``lat`` columns.
    """
    name = path.name.lower()
    if not name.endswith(WRITE_SUFFIXES):
        raise ConfigError(f"{path}: output must end in {', '.join(WRITE_SUFFIXES)}")
    if name.endswith(GEOJSON_SUFFIXES) and not {"lon", "lat"} <= set(df.columns):
        raise ConfigError(f"{path}: a GeoJSON output needs lon, lat columns")
    with atomic_path(path) as tmp:
        if name.endswith(GEOJSON_SUFFIXES):
            tmp.write_text(json.dumps(_feature_collection(df), allow_nan=False))
        elif name.endswith((".csv", ".csv.gz")):
            df.to_csv(tmp, index=False, compression="gzip" if name.endswith(".gz") else None)
        else:
            df.to_parquet(tmp, index=False)


def _feature_collection(df: pd.DataFrame) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the rows of ``df`` (JSON-safe values; NaN -> null)."""
    props = json.loads(df.drop(columns=["lon", "lat"]).to_json(orient="records", date_format="iso"))
    lonlat = df[["lon", "lat"]].to_numpy(dtype=np.float64)
    features = [{"type": "Feature", "properties": p,
                 "geometry": ({"type": "Point", "coordinates": [float(x), float(y)]}
                              if np.isfinite([x, y]).all() else None)}
                for p, (x, y) in zip(props, lonlat, strict=True)]
    return {"type": "FeatureCollection", "features": features}
