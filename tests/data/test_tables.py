"""Tests of the one table reader/writer and its column helpers (geocsp.data.tables)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geocsp.data.labels import check_classes, encode_labels, label_strings
from geocsp.data.tables import (
    err,
    open_table,
    read_points,
    read_raw_table,
    require_column,
    show,
    table_lonlat,
    write_table,
)
from geocsp.errors import ConfigError, CoordinateError, DatasetError, MissingFileError

CSV = "lon,lat,label,note\n1.5,2.5,007,NA\n,,,null\n"


def _check_na_semantics(t: pd.DataFrame) -> None:
    assert t["label"].tolist()[0] == "007" and pd.isna(t["label"].iloc[1])  # text; empty = missing
    assert t["note"].tolist() == ["NA", "null"]  # only empty cells are missing
    assert t["lon"].iloc[0] == 1.5 and np.isnan(t["lon"].iloc[1])


def test_read_raw_csv_only_empty_cells_are_missing(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(CSV)
    _check_na_semantics(read_raw_table(p))


def test_read_raw_csv_gz(tmp_path: Path) -> None:
    p = tmp_path / "t.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write(CSV)
    t = read_raw_table(p)
    _check_na_semantics(t)
    pd.testing.assert_frame_equal(t, read_raw_table(_plain(tmp_path)))
    table, lonlat = read_points(p)
    np.testing.assert_array_equal(lonlat, [[1.5, 2.5], [np.nan, np.nan]])
    assert len(table) == 2


def _plain(tmp_path: Path) -> Path:
    p = tmp_path / "plain.csv"
    p.write_text(CSV)
    return p


def test_read_raw_sniffs_the_delimiter(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("lon;lat;name\n1,5;2;a\n")
    t = read_raw_table(p, sep=None, text_columns=None)
    assert list(t.columns) == ["lon", "lat", "name"] and t["name"].tolist() == ["a"]
    tsv = tmp_path / "t.tsv.gz"
    with gzip.open(tsv, "wt") as f:
        f.write("lon\tlat\n1\t2\n")
    assert read_raw_table(tsv, sep=None).to_numpy().tolist() == [[1, 2]]
    # text_columns=None infers every column (a numeric "date" stays numeric)
    num = tmp_path / "n.csv"
    num.write_text("date\n12\n")
    assert read_raw_table(num, text_columns=None)["date"].dtype.kind == "i"
    assert read_raw_table(num)["date"].tolist() == ["12"]


def test_read_raw_parquet_and_errors(tmp_path: Path) -> None:
    df = pd.DataFrame({"lon": [1.0], "lat": [2.0]})
    for name in ("t.parquet", "t.pq"):
        df.to_parquet(tmp_path / name)
        pd.testing.assert_frame_equal(read_raw_table(tmp_path / name), df)
    with pytest.raises(MissingFileError, match=re.escape("nope.csv: file not found")):
        read_raw_table(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_bytes(b"x")
    with pytest.raises(DatasetError, match=re.escape("t.xlsx: unsupported table format")):
        read_raw_table(tmp_path / "t.xlsx")
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"bad.csv.gz: unreadable csv table \(BadGzipFile"):
        read_raw_table(tmp_path / "bad.csv.gz", sep=None)


def test_open_table_refuses_empty_and_names_columns(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text("lon,lat\n")
    assert len(read_raw_table(p)) == 0
    with pytest.raises(DatasetError, match=re.escape("e.csv: empty table; expected at least one row")):
        open_table(p)
    q = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(q)
    t = open_table(q)
    with pytest.raises(DatasetError, match=re.escape("t.parquet:lon: column 'lon' (--lon-col) not found; available columns: a")):
        require_column(t, q, "lon", "--lon-col")


def test_err_and_show() -> None:
    assert str(err("f.csv", "bad", row=3, column="lon")) == "f.csv:3:lon: bad"
    assert str(err("f.csv", "bad")) == "f.csv: bad"
    assert show(np.float32(1.5)) == "1.5" and show("x") == "'x'"


def test_table_lonlat_and_labels() -> None:
    t = pd.DataFrame({"lon": ["10", "", None], "lat": ["20", " ", None]})
    np.testing.assert_array_equal(table_lonlat(t, "src"), [[10, 20], [np.nan, np.nan], [np.nan, np.nan]])
    with pytest.raises(DatasetError, match=r"src:0:lat: not a number: 'north'"):
        table_lonlat(pd.DataFrame({"lon": [1.0], "lat": ["north"]}), "src")
    with pytest.raises(DatasetError, match=r"src:lon: missing column; available columns: x"):
        table_lonlat(pd.DataFrame({"x": [1.0]}), "src")
    with pytest.raises(CoordinateError):
        table_lonlat(pd.DataFrame({"lon": [200.0], "lat": [0.0]}), "src")
    s, missing = label_strings(pd.Series([3.0, np.nan, 1.0]))
    assert s.tolist()[::2] == ["3", "1"] and missing.tolist() == [False, True, False]
    codes = encode_labels(pd.Series(["b", None, "a"]), ["a", "b"], "src")
    assert codes.tolist() == [1, -1, 0] and codes.dtype == np.int64
    with pytest.raises(DatasetError, match=r"src:1:label: unknown class 'c' \(2 rows in all\)"):
        encode_labels(pd.Series(["a", "c", "c"]), ["a", "b"], "src")
    assert check_classes(("a", "b"), "m") == ["a", "b"]
    with pytest.raises(DatasetError, match="duplicate class name 'a' at position 1"):
        check_classes(["a", "a"], "m")


def test_read_points_write_table_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"lon": [1.0, -2.0], "lat": [3.0, 4.0], "id": ["x", "y"]})
    for name in ("p.csv", "p.parquet"):
        out = write_table(df, tmp_path / name)
        table, lonlat = read_points(out)
        np.testing.assert_array_equal(lonlat, df[["lon", "lat"]].to_numpy())
        assert lonlat.dtype == np.float64 and table["id"].tolist() == ["x", "y"]
    with pytest.raises(ConfigError, match=re.escape("output must end in .csv, .csv.gz, .parquet, .pq, .geojson")):
        write_table(df, tmp_path / "p.json")
    (tmp_path / "q.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError, match=r"q.csv:lon: column 'lon' \(--lon-col\) not found"):
        read_points(tmp_path / "q.csv")




@pytest.mark.parametrize("name", ["dup.csv", "dup.csv.gz", "dup.parquet"])
def test_duplicated_column_names_are_refused(tmp_path: Path, name: str) -> None:
    """pandas would silently rename the second 'lon' to 'lon.1' (kept as a covariate)."""
    p = tmp_path / name
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table([[1.0], [2.0], [3.0]], names=["lon", "lat", "lon"]), p)
    else:
        text = "lon,lat,lon\n1,2,3\n"
        p.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(p))}: column 'lon' appears 2 times"):
        read_raw_table(p)
    with pytest.raises(DatasetError, match="appears 2 times"):
        read_points(p)


def test_empty_header_cells_are_not_duplicates(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("lon,lat,,\n1,2,,\n")
    assert len(read_raw_table(tmp_path / "t.csv")) == 1


def test_refuse_existing(tmp_path: Path) -> None:
    from geocsp.data.tables import refuse_existing

    f = tmp_path / "out.csv"
    assert refuse_existing(f, False) == f  # absent: fine
    (tmp_path / "empty").mkdir()
    refuse_existing(tmp_path / "empty", False)  # an empty directory is free
    f.write_text("x\n")
    with pytest.raises(ConfigError, match=r"out.csv: exists; pass --overwrite"):
        refuse_existing(f, False)
    refuse_existing(f, True)


def test_refuse_existing_never_lets_an_output_replace_an_input(tmp_path: Path) -> None:
    """Even with overwrite: the same path, another spelling of it, or a hard link."""
    from geocsp.data.tables import refuse_existing

    src = tmp_path / "pts.csv"
    src.write_text("lon,lat\n1,2\n")
    (tmp_path / "link.csv").hardlink_to(src)
    for out in (src, tmp_path / "." / "pts.csv", tmp_path / "link.csv"):
        with pytest.raises(ConfigError, match=r"is the input .*pts\.csv; writing the results there would replace it"):
            refuse_existing(out, True, inputs=[None, src])
    other = tmp_path / "other.csv"
    other.write_text("x\n")
    assert refuse_existing(other, True, inputs=[src]) == other  # another existing file: replaced as asked
    assert refuse_existing(tmp_path / "new.csv", False, inputs=[src]) == tmp_path / "new.csv"


def test_refuse_existing_refuses_a_directory_where_a_file_goes(tmp_path: Path) -> None:
    """Was refused only at the final rename, after the work, naming the hidden temporary."""
    from geocsp.data.tables import refuse_existing

    (tmp_path / "p.csv").mkdir()
    with pytest.raises(ConfigError, match=r"p\.csv: is a directory; expected a file path for --html"):
        refuse_existing(tmp_path / "p.csv", True, "--html", file=True)
    assert refuse_existing(tmp_path / "p.csv", True) == tmp_path / "p.csv"  # a dataset folder output: fine


def test_rows_with_more_fields_than_the_header_are_refused_not_shifted(tmp_path: Path) -> None:
    """pandas takes extra leading fields as the index: (10, 20, 30) was read as lon 20, lat 30."""
    p = tmp_path / "shift.csv"
    p.write_text("lon,lat\n10,20,30\n11,21,31\n")
    with pytest.raises(DatasetError, match=r"shift\.csv: the data rows have more fields than the header's 2; "
                                           r"expected one field per header column"):
        read_points(p)
    p.write_text("lon,lat,\n10,20,\n")  # a trailing delimiter on every line, header included, is fine
    assert read_points(p)[1].tolist() == [[10.0, 20.0]]


@pytest.mark.parametrize("values", [[True, False], pd.array([True, None], dtype="boolean")])
def test_a_boolean_coordinate_column_is_not_numbers(tmp_path: Path, values: object) -> None:
    p = tmp_path / "b.parquet"  # was read as lon 1.0 / 0.0
    pd.DataFrame({"lon": values, "lat": [1.0, 2.0]}).to_parquet(p)
    with pytest.raises(DatasetError, match=r"b\.parquet:0:lon: not a number: True \(a boolean column\); expected degrees"):
        read_points(p)


def test_a_boolean_among_numbers_is_not_a_number() -> None:
    table = pd.DataFrame({"lon": pd.Series([1.5, True], dtype=object), "lat": [1.0, 2.0]})
    with pytest.raises(DatasetError, match=r"t:1:lon: not a number: True \(a boolean column\); expected degrees"):
        table_lonlat(table, "t")


def test_a_directory_given_as_a_table_says_so(tmp_path: Path) -> None:
    (tmp_path / "dd.csv").mkdir()  # was: "file not found"
    with pytest.raises(MissingFileError, match=re.escape("dd.csv: is a directory; expected a file")):
        read_points(tmp_path / "dd.csv")


def test_refuse_existing_counts_a_dangling_symlink(tmp_path: Path) -> None:
    from geocsp.data.tables import refuse_existing

    link = tmp_path / "out.csv"
    link.symlink_to(tmp_path / "nowhere.csv")  # was: replaced by a file without --overwrite
    with pytest.raises(ConfigError, match=r"out\.csv: exists; pass --overwrite"):
        refuse_existing(link, overwrite=False)
    assert refuse_existing(link, overwrite=True) == link


def test_padded_header_names_are_quoted_in_the_column_list(tmp_path: Path) -> None:
    """`column 'lon' not found; available columns:  species ,  lon ,  lat` read as if lon were there."""
    p = tmp_path / "ws.csv"
    p.write_text(" species , lon , lat \nB,-65.4,-10.38\n")
    with pytest.raises(DatasetError, match=r"available columns: ' species ', ' lon ', ' lat '$"):
        read_points(p)
