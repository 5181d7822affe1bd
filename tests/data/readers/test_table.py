"""Tests of the generic CSV/Parquet reader with user-named columns."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geocsp.data.readers.table import classes_from_labels, read_table
from geocsp.errors import CoordinateError, DatasetError, MissingFileError


def _csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "obs.csv"
    p.write_text(text)
    return p


def test_read_table_renames_columns(tmp_path: Path) -> None:
    p = _csv(tmp_path, "y,x,species,when,f1,f2,label\n45,7,fox,2020-01-01,0.5,1,old\n,,owl,,2,3,old\n")
    sp = read_table(p, lon_col="x", lat_col="y", label_col="species", date_col="when", feature_cols=["f1", "f2"])
    assert list(sp.table.columns) == ["lat", "lon", "label", "date", "orig_label"]
    np.testing.assert_allclose(sp.table[["lon", "lat"]].to_numpy(), [[7, 45], [np.nan, np.nan]])
    np.testing.assert_array_equal(sp.features, np.array([[0.5, 1], [2, 3]], np.float32))
    assert classes_from_labels(sp) == ["fox", "owl"]


def test_read_table_parquet_and_wrap(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pd.DataFrame({"lon": [190.0, 10.0], "lat": [0.0, 1.0]}).to_parquet(p)
    with pytest.raises(CoordinateError, match="longitude outside"):
        read_table(p)
    assert read_table(p, wrap_lon=True).table["lon"].tolist() == [-170.0, 10.0]


def test_read_table_errors(tmp_path: Path) -> None:
    p = _csv(tmp_path, "lat,lon,name\n120,45,a\n150,50,b\n")
    with pytest.raises(DatasetError, match=r"obs.csv:species: column 'species' \(--label-col\) not found; available columns: lat, lon, name"):
        read_table(p, label_col="species")
    with pytest.raises(CoordinateError, match="looks like lat/lon are swapped"):
        read_table(p)
    empty = _csv(tmp_path, "lon,lat\n")
    with pytest.raises(DatasetError, match=re.escape("obs.csv: empty table")):
        read_table(empty)
    bad = _csv(tmp_path, "lon,lat,f\n1,2,x\n")
    with pytest.raises(DatasetError, match=r"obs.csv:0:f: feature cell 'x' is not a finite number"):
        read_table(bad, feature_cols=["f"])
    with pytest.raises(MissingFileError, match=re.escape("nope.csv: file not found")):
        read_table(tmp_path / "nope.csv")


def test_read_table_corrupt_parquet(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    p.write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match=r"t.parquet: unreadable parquet table"):
        read_table(p)


def test_import_table_refuses_an_existing_dataset(tmp_path: Path) -> None:
    from geocsp.data.readers.table import import_table
    from geocsp.errors import ConfigError

    (tmp_path / "t.csv").write_text("lon,lat,label\n1,2,a\n3,4,b\n")
    import_table(tmp_path / "t.csv", tmp_path / "ds", label_col="label")
    before = (tmp_path / "ds" / "manifest.json").read_text()
    (tmp_path / "t.csv").write_text("lon,lat,label\n5,6,c\n")
    with pytest.raises(ConfigError, match=r"ds: exists; pass --overwrite"):
        import_table(tmp_path / "t.csv", tmp_path / "ds", label_col="label")
    assert (tmp_path / "ds" / "manifest.json").read_text() == before
    _, rows, n = import_table(tmp_path / "t.csv", tmp_path / "ds", label_col="label", overwrite=True)
    assert (rows, n) == (1, 1)


def test_a_label_missing_from_the_classes_file_names_the_file_row_and_column(tmp_path: Path) -> None:
    from geocsp.data.readers.table import import_table

    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0], "spid": ["awt01", "awt40", "awt01"]}).to_csv(
        tmp_path / "awt.csv", index=False)
    (tmp_path / "classes.txt").write_text("awt01\nawt02\n")
    with pytest.raises(DatasetError, match=re.escape("awt.csv:1:spid: unknown class 'awt40'; expected a name "
                                                     "from --classes classes.txt (2 classes)")):
        import_table(tmp_path / "awt.csv", tmp_path / "ds", lon_col="x", lat_col="y", label_col="spid",
                     classes_file=tmp_path / "classes.txt")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("text", ["NA", "nan", "<NA>", "None", "NULL", "n/a"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_missing_value_written_as_text_is_not_a_class(tmp_path: Path, text: str, fmt: str) -> None:
    """R writes missing labels as NA: imported, they made one class of every unlabelled row."""
    from geocsp.data.readers.table import import_table

    df = pd.DataFrame({"lon": [1.0, 2.0, 3.0, 4.0], "lat": [5.0, 6.0, 7.0, 8.0], "sp": ["a", text, "b", text]})
    src = tmp_path / f"t.{fmt}"
    df.to_csv(src, index=False) if fmt == "csv" else df.to_parquet(src)
    with pytest.raises(DatasetError, match=re.escape(f"t.{fmt}:1:sp: label {text!r} (2 such rows) reads as a "
                                                     "missing value written as text; leave the cell empty")):
        import_table(src, tmp_path / "ds", label_col="sp")
    assert not (tmp_path / "ds").exists()
    (tmp_path / "classes.txt").write_text(f"a\nb\n{text}\n")  # a class really named so: listed explicitly
    _, rows, n = import_table(src, tmp_path / "ds", label_col="sp", classes_file=tmp_path / "classes.txt")
    assert (rows, n) == (4, 3)
    df.assign(sp=["a", "", "b", "NAB"]).to_csv(tmp_path / "ok.csv", index=False)  # empty = unlabelled; NAB a name
    _, _, n = import_table(tmp_path / "ok.csv", tmp_path / "ds2", label_col="sp")
    assert n == 3
