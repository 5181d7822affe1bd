"""Property tests (hypothesis): coordinate validation and the table readers' round trips."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from geocsp.coords import validate_lonlat
from geocsp.data.readers.table import read_table
from geocsp.data.tables import read_points
from geocsp.errors import CoordinateError

SETTINGS = settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

lons = st.floats(-180.0, 180.0, allow_nan=False)
lats = st.floats(-90.0, 90.0, allow_nan=False)
points = st.lists(st.tuples(lons, lats), min_size=1, max_size=20)


@SETTINGS
@given(points)
def test_valid_coordinates_are_accepted_exactly(pts: list[tuple[float, float]]) -> None:
    out = validate_lonlat(np.array(pts))
    assert out.dtype == np.float64 and out.shape == (len(pts), 2)
    np.testing.assert_array_equal(out, np.array(pts))


@SETTINGS
@given(points, st.data(), st.sampled_from(["nan", "inf", "lat", "lon"]))
def test_one_bad_value_is_refused_naming_its_row(pts: list[tuple[float, float]], data: st.DataObject,
                                                 kind: str) -> None:
    arr = np.array(pts)
    row = data.draw(st.integers(0, len(pts) - 1))
    if kind == "nan":
        arr[row, data.draw(st.integers(0, 1))] = np.nan
    elif kind == "inf":
        arr[row, data.draw(st.integers(0, 1))] = data.draw(st.sampled_from([np.inf, -np.inf]))
    elif kind == "lat":
        arr[row, 1] = data.draw(st.floats(90.0, 1e6, exclude_min=True) | st.floats(-1e6, -90.0, exclude_max=True))
    else:
        arr[row, 0] = data.draw(st.floats(180.0, 1e6, exclude_min=True) | st.floats(-1e6, -180.0, exclude_max=True))
    with pytest.raises(CoordinateError, match=rf"^pts\.csv: .*row\(s\) {row}\b"):
        validate_lonlat(arr, source="pts.csv")


@SETTINGS
@given(st.lists(st.tuples(st.floats(-1e4, 1e4), lats), min_size=1, max_size=20))
def test_wrap_maps_longitudes_into_range(pts: list[tuple[float, float]]) -> None:
    arr = np.array(pts)
    out = validate_lonlat(arr, wrap=True)
    np.testing.assert_array_equal(out[:, 1], arr[:, 1])
    assert (out[:, 0] >= -180.0).all() and (out[:, 0] <= 180.0).all()
    if (np.abs(arr[:, 0]) > 180.0).any():  # wrapping happened: [-180, 180), same angle
        assert (out[:, 0] < 180.0).all()
        turns = (arr[:, 0] - out[:, 0]) / 360.0
        np.testing.assert_allclose(turns, np.round(turns), atol=1e-9)
    else:
        np.testing.assert_array_equal(out, arr)


def test_projected_metres_get_the_crs_hint() -> None:
    """UTM-like metres given as degrees: refused, and the message points at --crs."""
    arr = np.array([[500000.0, 8253480.0], [510000.0, 8260000.0]])
    with pytest.raises(CoordinateError, match=r"latitude outside \[-90, 90\].*projected coordinates .*--crs EPSG:N"):
        validate_lonlat(arr, source="m.csv")


@SETTINGS
@given(st.lists(st.tuples(st.floats(-90.0, 90.0), st.floats(-180.0, 180.0)), min_size=1, max_size=20),
       st.data())
def test_swapped_columns_are_detected(pts: list[tuple[float, float]], data: st.DataObject) -> None:
    """(lat, lon) given as (lon, lat): refused with the swap hint when some |lat| > 90."""
    arr = np.array(pts)
    row = data.draw(st.integers(0, len(pts) - 1))
    arr[row, 1] = data.draw(st.floats(90.0, 180.0, exclude_min=True))
    with pytest.raises(CoordinateError, match="looks like lat/lon are swapped"):
        validate_lonlat(arr)


# ---- table readers ------------------------------------------------------------------------

labels = st.one_of(st.none(), st.just("NA"), st.just("null"),
                   st.text("abcxyz_ 0123456789", min_size=1, max_size=6).filter(lambda s: s.strip() == s))
rows = st.lists(st.tuples(st.one_of(st.none(), lons), lats, labels), min_size=1, max_size=12)


def _frame(data: list[tuple[float | None, float, str | None]]) -> pd.DataFrame:
    lon = [r[0] for r in data]
    lat = [np.nan if r[0] is None else r[1] for r in data]  # a missing location: both empty
    return pd.DataFrame({"lon": pd.array(lon, dtype="Float64"), "lat": pd.array(lat, dtype="Float64"),
                         "label": pd.array([r[2] for r in data], dtype="string")})


def _write(df: pd.DataFrame, path: Path) -> None:
    name = path.name
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
        return
    text = df.to_csv(index=False, na_rep="", float_format="%.17g")
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())


@SETTINGS
@given(rows, st.sampled_from(["t.csv", "t.csv.gz", "t.parquet"]))
def test_tables_round_trip(data: list[tuple[float | None, float, str | None]], name: str) -> None:
    """Values are preserved, empty cells are missing, "NA"/"null" text stays text."""
    df = _frame(data)
    assume(not (df["label"] == "").any())
    with TemporaryDirectory() as d:
        path = Path(d) / name
        _write(df, path)
        table, lonlat = read_points(path)
        split = read_table(path, label_col="label")
    want = df[["lon", "lat"]].to_numpy(dtype=np.float64, na_value=np.nan)
    np.testing.assert_array_equal(lonlat, want)
    np.testing.assert_array_equal(split.table[["lon", "lat"]].to_numpy(dtype=np.float64), want)
    for got in (table["label"], split.table["label"]):
        expected = [None if x is None else x for x in (r[2] for r in data)]
        actual = [None if pd.isna(x) else str(x) for x in got]
        assert actual == expected


@SETTINGS
@given(st.sampled_from(["lon", "lat", "label"]), st.integers(2, 3))
def test_duplicated_header_names_are_refused(col: str, times: int) -> None:
    header = ["lon", "lat", "label"] + [col] * (times - 1)
    with TemporaryDirectory() as d:
        path = Path(d) / "t.csv"
        path.write_text(",".join(header) + "\n" + ",".join(["1"] * len(header)) + "\n")
        with pytest.raises(Exception, match=re.escape(f"column '{col}' appears {times} times")):
            read_points(path)
