"""Every table format (CSV, CSV.gz, Parquet, GeoParquet, GeoJSON points): round trips and bad input.

GeoParquet files are built here by hand (WKB packed with struct, ``geo`` metadata written with
pyarrow), independently of the reader's decoder.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geocsp.data.readers.table import read_table
from geocsp.data.table_formats import has_geometry
from geocsp.data.tables import read_points, read_raw_table, write_table
from geocsp.data.wkb import wkb_points
from geocsp.errors import ConfigError, CoordinateError, DatasetError

POINTS = pd.DataFrame({"lon": [11.88, -122.4, 151.2], "lat": [43.46, 37.8, -33.87],
                       "species": ["a", "b", "a"], "count": [1, 2, 3]})


def wkb_point(x: float, y: float, *, big: bool = False, z: float | None = None, srid: int | None = None) -> bytes:
    """A WKB point: ISO (Z as type 1001) or, with ``srid``, PostGIS EWKB."""
    order = ">" if big else "<"
    code = 1 if z is None else 1001
    head = struct.pack(order + "BI", 0 if big else 1, code | (0x20000000 if srid is not None else 0))
    body = (struct.pack(order + "I", srid) if srid is not None else b"") + struct.pack(order + "dd", x, y)
    return head + body + (struct.pack(order + "d", z) if z is not None else b"")


def wkb_linestring() -> bytes:
    return struct.pack("<BII4d", 1, 2, 2, 0.0, 0.0, 1.0, 1.0)


def write_geoparquet(path: Path, props: pd.DataFrame, geoms: list[Any], *, crs: Any = "absent",
                     encoding: str = "WKB", geom_type: pa.DataType | None = None) -> Path:
    table = pa.Table.from_pandas(props, preserve_index=False)
    table = table.append_column("geometry", pa.array(geoms, type=geom_type or pa.binary()))
    column: dict[str, Any] = {"encoding": encoding, "geometry_types": ["Point"]}
    if crs != "absent":
        column["crs"] = crs
    meta = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
    pq.write_table(table.replace_schema_metadata({b"geo": json.dumps(meta).encode()}), path)
    return path


def write_geojson(path: Path, features: list[dict[str, Any]], **extra: Any) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features, **extra}))
    return path


def point_feature(x: float, y: float, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": props}


@pytest.mark.parametrize("name", ["p.csv", "p.csv.gz", "p.parquet", "p.geojson"])
def test_write_table_read_points_round_trip(tmp_path: Path, name: str) -> None:
    out = write_table(POINTS, tmp_path / name)
    if name.endswith(".gz"):
        assert gzip.decompress(out.read_bytes()).startswith(b"lon,lat,species")
    table, lonlat = read_points(out)
    np.testing.assert_array_equal(lonlat, POINTS[["lon", "lat"]].to_numpy())
    assert table["species"].tolist() == ["a", "b", "a"] and table["count"].tolist() == [1, 2, 3]
    assert has_geometry(out) == name.endswith(".geojson")


def test_geojson_round_trip_keeps_missing_locations(tmp_path: Path) -> None:
    df = pd.DataFrame({"lon": [1.0, np.nan], "lat": [2.0, np.nan], "note": ["x", None]})
    out = write_table(df, tmp_path / "m.geojson")
    doc = json.loads(out.read_text())
    assert doc["features"][1]["geometry"] is None and doc["features"][1]["properties"] == {"note": None}
    table, lonlat = read_points(out)
    np.testing.assert_array_equal(lonlat, [[1.0, 2.0], [np.nan, np.nan]])
    assert table["note"].iloc[0] == "x" and pd.isna(table["note"].iloc[1])


def test_geojson_properties_ids_and_clashing_columns(tmp_path: Path) -> None:
    f0 = {**point_feature(10.0, 20.0, lon=999, species="a"), "id": "obs1"}
    f1 = {"type": "Feature", "geometry": {"type": "Point", "coordinates": []}, "properties": None, "id": 7}
    p = write_geojson(tmp_path / "g.geojson", [f0, f1])
    t = read_raw_table(p)
    assert list(t.columns) == ["lon", "lat", "orig_lon", "species", "id"]
    assert t["id"].tolist() == ["obs1", "7"] and t["orig_lon"].iloc[0] == 999
    np.testing.assert_array_equal(t[["lon", "lat"]].to_numpy(), [[10.0, 20.0], [np.nan, np.nan]])
    write_table(t, tmp_path / "g.parquet")  # a column mixing text and numbers is read as text


def test_geoparquet_wkb_flavours_round_trip(tmp_path: Path) -> None:
    geoms = [wkb_point(11.88, 43.46), wkb_point(-122.4, 37.8, big=True), wkb_point(151.2, -33.87, z=5.0),
             wkb_point(2.35, 48.85, srid=4326), None, wkb_point(float("nan"), float("nan"))]
    props = pd.DataFrame({"species": list("abcdef")})
    p = write_geoparquet(tmp_path / "g.parquet", props, geoms)
    assert has_geometry(p)
    table, lonlat = read_points(p)
    want = [[11.88, 43.46], [-122.4, 37.8], [151.2, -33.87], [2.35, 48.85], [np.nan] * 2, [np.nan] * 2]
    np.testing.assert_array_equal(lonlat, want)
    assert list(table.columns) == ["lon", "lat", "species"]  # the WKB column is dropped


def test_geoparquet_fast_path_matches_row_by_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xy = np.stack([rng.uniform(-180, 180, 50), rng.uniform(-90, 90, 50)], axis=1)
    blobs: list[bytes | None] = [wkb_point(x, y, big=bool(i % 2)) for i, (x, y) in enumerate(xy)]
    np.testing.assert_array_equal(wkb_points(blobs, "s"), xy)  # all 21-byte: vectorised
    blobs.append(wkb_point(0.0, 0.0, z=1.0))  # one 3-D point: row by row
    np.testing.assert_array_equal(wkb_points(blobs, "s")[:50], xy)


def test_geoparquet_geoarrow_point_encoding(tmp_path: Path) -> None:
    struct_type = pa.struct([("x", pa.float64()), ("y", pa.float64())])
    geoms = [{"x": 1.0, "y": 2.0}, None]
    p = write_geoparquet(tmp_path / "a.parquet", pd.DataFrame({"k": [1, 2]}), geoms, encoding="point",
                         geom_type=struct_type)
    np.testing.assert_array_equal(read_points(p)[1], [[1.0, 2.0], [np.nan, np.nan]])


def test_geoparquet_declared_crs_and_override(tmp_path: Path) -> None:
    pyproj = pytest.importorskip("pyproj")
    ll = np.array([[144.9631, -37.8136], [145.5, -36.9]])
    fwd = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:28355", always_xy=True)
    x, y = fwd.transform(ll[:, 0], ll[:, 1])
    geoms = [wkb_point(a, b) for a, b in zip(x, y, strict=True)]
    projjson = {"type": "ProjectedCRS", "name": "GDA94 / MGA zone 55", "id": {"authority": "EPSG", "code": 28355}}
    declared = write_geoparquet(tmp_path / "d.parquet", pd.DataFrame({"k": [1, 2]}), geoms, crs=projjson)
    np.testing.assert_allclose(read_points(declared)[1], ll, atol=1e-9)
    plain = write_geoparquet(tmp_path / "o.parquet", pd.DataFrame({"k": [1, 2]}), geoms)  # no crs: lon/lat
    with pytest.raises(CoordinateError):
        read_points(plain)
    np.testing.assert_allclose(read_points(plain, crs="EPSG:28355")[1], ll, atol=1e-9)


def test_crs_reprojects_named_columns(tmp_path: Path) -> None:
    pyproj = pytest.importorskip("pyproj")
    ll = np.array([[144.9631, -37.8136], [np.nan, np.nan]])
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:28355", always_xy=True).transform(ll[:, 0], ll[:, 1])
    p = tmp_path / "m.csv.gz"
    pd.DataFrame({"easting": x, "northing": y, "lon": ["keep", "me"]}).to_csv(p, index=False)
    table, lonlat = read_points(p, lon_col="easting", lat_col="northing", crs="EPSG:28355")
    np.testing.assert_allclose(lonlat, ll, atol=1e-9)
    assert table["orig_lon"].tolist() == ["keep", "me"] and table["lon"].iloc[0] == lonlat[0, 0]
    sd = read_table(p, "easting", "northing", crs="EPSG:28355")  # import-table's reader
    np.testing.assert_allclose(sd.table[["lon", "lat"]].to_numpy(dtype=float), ll, atol=1e-9)
    with pytest.raises(ConfigError, match=r"unknown coordinate reference system 'EPSG:999999'"):
        read_points(p, lon_col="easting", lat_col="northing", crs="EPSG:999999")


def test_named_columns_beat_the_geometry(tmp_path: Path) -> None:
    p = write_geojson(tmp_path / "g.geojson", [point_feature(1.0, 2.0, east=30.0, north=40.0)])
    table, lonlat = read_points(p, lon_col="east", lat_col="north")
    np.testing.assert_array_equal(lonlat, [[30.0, 40.0]])
    assert table["orig_lon"].tolist() == [1.0]


def test_geojson_that_is_not_points_is_refused(tmp_path: Path) -> None:
    line = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
            "properties": {}}
    p = write_geojson(tmp_path / "l.geojson", [point_feature(0.0, 0.0), point_feature(1.0, 1.0), line])
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(p))}: feature 2: geometry type 'LineString'; "
                                           "expected Point features"):
        read_points(p)
    poly = tmp_path / "poly.geojson"
    poly.write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1], [0, 0]]]}))
    with pytest.raises(DatasetError, match=r"poly.geojson: GeoJSON type 'Polygon'; expected a FeatureCollection"):
        read_raw_table(poly)
    bad = write_geojson(tmp_path / "b.geojson", [{"type": "Feature", "properties": {},
                                                  "geometry": {"type": "Point", "coordinates": ["a", 1]}}])
    with pytest.raises(DatasetError, match=r"feature 0: Point coordinates \['a', 1\]; expected \[lon, lat\]"):
        read_raw_table(bad)
    (tmp_path / "t.geojson").write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(DatasetError, match=r"t.geojson: unreadable geojson table \(JSONDecodeError"):
        read_raw_table(tmp_path / "t.geojson")


def test_geoparquet_that_is_not_points_is_refused(tmp_path: Path) -> None:
    p = write_geoparquet(tmp_path / "l.parquet", pd.DataFrame({"k": [1, 2]}), [wkb_point(0, 0), wkb_linestring()])
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(p))}: row 1: geometry type 'LineString'; "
                                           "expected Point geometries"):
        read_points(p)
    cut = write_geoparquet(tmp_path / "c.parquet", pd.DataFrame({"k": [1, 2]}),
                           [wkb_point(0, 0, z=1.0), wkb_point(0, 0)[:12]])
    with pytest.raises(DatasetError, match=r"c.parquet: row 1: malformed or truncated WKB geometry \(12 bytes\)"):
        read_points(cut)


def test_truncated_gzip_is_one_error(tmp_path: Path) -> None:
    p = tmp_path / "t.csv.gz"
    data = gzip.compress(("lon,lat\n" + "1.0,2.0\n" * 5000).encode())
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"t.csv.gz: unreadable csv table \(EOFError"):
        read_points(p)


def test_parquet_without_the_columns(tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    pd.DataFrame({"x": [1.0], "y": [2.0]}).to_parquet(p)
    with pytest.raises(DatasetError, match=r"x.parquet:lon: column 'lon' \(--lon-col\) not found; "
                                           "available columns: x, y"):
        read_points(p)
    with pytest.raises(DatasetError, match=r"column 'northing' \(--lat-col\) not found"):
        read_points(p, lon_col="x", lat_col="northing")
    np.testing.assert_array_equal(read_points(p, lon_col="x", lat_col="y")[1], [[1.0, 2.0]])


def test_geojson_output_needs_lonlat(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a GeoJSON output needs lon, lat columns"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "o.geojson")
    assert not (tmp_path / "o.geojson").exists()


def test_geoparquet_metadata_that_does_not_fit(tmp_path: Path) -> None:
    p = write_geoparquet(tmp_path / "e.parquet", pd.DataFrame({"k": [1]}), [wkb_point(0, 0)], encoding="WKT")
    with pytest.raises(DatasetError, match=r"e.parquet:geometry: geometry column 'geometry' has encoding 'WKT'"):
        read_points(p)
    table = pa.table({"k": [1]}).replace_schema_metadata(
        {b"geo": json.dumps({"primary_column": "geom", "columns": {"geom": {"encoding": "WKB"}}}).encode()})
    pq.write_table(table, tmp_path / "m.parquet")
    with pytest.raises(DatasetError, match=r"m.parquet: GeoParquet metadata names geometry column 'geom', which the file lacks"):
        read_raw_table(tmp_path / "m.parquet")
