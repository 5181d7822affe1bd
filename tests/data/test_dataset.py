"""Tests of the geocsp dataset format: write -> load round trip and every bad-input path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from geocsp.data import GeoDataset, SplitData, load_dataset, write_dataset
from geocsp.errors import CoordinateError, DatasetError, MissingFileError

CLASSES = ["a", "b", "c"]


def _table(n: int = 6) -> pd.DataFrame:
    lon = np.linspace(-170, 170, n)
    lat = np.linspace(-60, 60, n)
    lon[1] = lat[1] = np.nan  # a missing location
    labels = [CLASSES[i % 3] for i in range(n)]
    labels[2] = None  # unlabelled
    return pd.DataFrame({"lon": lon, "lat": lat, "label": labels, "elev": np.arange(n) * 10.0})


def _split(n: int = 6, dtype: type = np.float32) -> SplitData:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    sparse = scipy.sparse.csr_matrix(np.where(probs > 0.3, probs, 0.0))
    return SplitData(
        _table(n), rng.normal(size=(n, 4)).astype(dtype), {"default": probs, "ratio0.050": sparse}
    )


@pytest.fixture
def ds_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds", {"train": _split(), "val": _split(4)}, CLASSES, {"by": "test"})


def test_round_trip(ds_dir: Path) -> None:
    ds = load_dataset(ds_dir)
    assert isinstance(ds, GeoDataset)
    assert ds.classes == CLASSES and ds.split_names == ["train", "val"] and ds.feature_dim == 4
    assert ds.manifest["provenance"] == {"by": "test"}
    sp, ref = ds.split("train"), _split()
    assert len(sp) == 6
    np.testing.assert_array_equal(sp.labels, [0, 1, -1, 0, 1, 2])
    np.testing.assert_array_equal(sp.has_location, [True, False, True, True, True, True])
    np.testing.assert_allclose(sp.lonlat, ref.table[["lon", "lat"]].to_numpy())
    assert isinstance(sp.features, np.memmap) and sp.features.dtype == np.float32
    np.testing.assert_array_equal(sp.features, ref.features)
    assert sp.prob_keys == ["default", "ratio0.050"]
    np.testing.assert_allclose(sp.probs(), ref.probs["default"])
    dense = sp.probs("ratio0.050")
    assert dense.dtype == np.float32
    np.testing.assert_allclose(dense, ref.probs["ratio0.050"].toarray())
    assert scipy.sparse.issparse(sp.probs("ratio0.050", dense=False))
    assert sp.table["elev"].tolist() == [0, 10, 20, 30, 40, 50]
    files = sorted(p.name for p in ds_dir.iterdir())
    assert files == [
        "manifest.json", "train.features.npy", "train.parquet", "train.probs.npy",
        "train.probs.ratio0.050.npz", "val.features.npy", "val.parquet", "val.probs.npy",
        "val.probs.ratio0.050.npz",
    ]


def test_float16_features_stay_float16(tmp_path: Path) -> None:
    out = write_dataset(tmp_path / "ds", {"train": _split(dtype=np.float16)}, CLASSES)
    assert load_dataset(out).split("train").features.dtype == np.float16


def test_unknown_split_and_probs_key(ds_dir: Path) -> None:
    ds = load_dataset(ds_dir)
    with pytest.raises(DatasetError, match="no split 'test'; available: train, val"):
        ds.split("test")
    with pytest.raises(DatasetError, match=re.escape("no probabilities 'ratio0.200'; available: default, ratio0.050")):
        ds.split("val").probs("ratio0.200")


def test_hand_made_csv_dataset(tmp_path: Path) -> None:
    """A user can write a CSV + manifest by hand; empty cells are missing, 'NA' is a class name."""
    d = tmp_path / "hand"
    d.mkdir()
    (d / "train.csv").write_text("lon,lat,label\n10,20,NA\n,,b\n-5.5,1,\n")
    manifest = {"format": "geocsp-dataset", "version": 1, "classes": ["NA", "b"],
                "splits": {"train": {"table": "train.csv"}}}
    (d / "manifest.json").write_text(json.dumps(manifest))
    sp = load_dataset(d).split("train")
    np.testing.assert_array_equal(sp.labels, [0, 1, -1])
    np.testing.assert_array_equal(sp.has_location, [True, False, True])
    assert sp.features is None and sp.prob_keys == []


def test_overwrites_existing_dataset_but_not_other_dirs(ds_dir: Path, tmp_path: Path) -> None:
    write_dataset(ds_dir, {"only": _split()}, CLASSES)
    assert load_dataset(ds_dir).split_names == ["only"]
    assert not (ds_dir / "val.parquet").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="is not a geocsp dataset; refusing to overwrite"):
        write_dataset(other, {"train": _split()}, CLASSES)
    assert (other / "notes.txt").read_text() == "keep me"
    (ds_dir / "notes.txt").write_text("keep me too")  # a user's file inside a dataset folder
    (ds_dir / "analysis").mkdir()
    with pytest.raises(DatasetError, match=r"holds 'analysis', which is not part of the geocsp dataset; refusing "
                                           r"to replace the folder"):  # was: deleted with the old dataset
        write_dataset(ds_dir, {"train": _split()}, CLASSES)
    assert (ds_dir / "notes.txt").read_text() == "keep me too" and load_dataset(ds_dir).split_names == ["only"]


def test_the_files_geocsp_writes_beside_a_dataset_are_replaced_with_it(ds_dir: Path) -> None:
    from geocsp.data.geoworld.truth import TRUTH_FILE
    from geocsp.data.writer import DATASET_EXTRAS
    from geocsp.features.extract import REPORT_NAME

    assert set(DATASET_EXTRAS) == {TRUTH_FILE, REPORT_NAME}
    for name in DATASET_EXTRAS:
        (ds_dir / name).write_text("x")
    write_dataset(ds_dir, {"only": _split()}, CLASSES)
    assert not any((ds_dir / name).exists() for name in DATASET_EXTRAS)


def _bad_split(kind: str) -> SplitData:
    sp = _split()
    if kind == "empty":
        sp.table = sp.table.iloc[:0]
    elif kind == "no_lat":
        sp.table = sp.table.drop(columns=["lat"])
    elif kind == "rows":
        sp.features = sp.features[:5]
    elif kind == "nan":
        sp.features[3, 2] = np.nan
    elif kind == "label":
        sp.table.loc[4, "label"] = "zebra"
    elif kind == "probs_shape":
        sp.probs["default"] = sp.probs["default"][:, :2]
    elif kind == "probs_range":
        sp.probs["default"][5, 1] = 1.5
    elif kind == "text_lon":
        sp.table["lon"] = sp.table["lon"].astype(object)
        sp.table.loc[3, "lon"] = "east"
    return sp


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("empty", r"^train table: empty table"),
        ("no_lat", r"^train table:lat: missing column; available columns: lon, label, elev"),
        ("rows", r"^train features: features have 5 rows but the table has 6"),
        ("nan", r"^train features:3:dim 2: non-finite feature value nan"),
        ("label", r"^train table:4:label: unknown class 'zebra'"),
        ("probs_shape", r"train probs 'default': probabilities must have shape \(N=6, Q=3\), got \(6, 2\)"),
        ("probs_range", r"train probs 'default':5:class 1: probability 1.5 outside \[0, 1\]"),
        ("text_lon", r"^train table:3:lon: not a number: 'east'"),
    ],
)
def test_write_rejects_bad_input_and_writes_nothing(tmp_path: Path, kind: str, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        write_dataset(tmp_path / "out", {"val": _split(), "train": _bad_split(kind)}, CLASSES)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_coordinates_and_classes(tmp_path: Path) -> None:
    sp = _split()
    sp.table[["lon", "lat"]] = sp.table[["lat", "lon"]].to_numpy() * [1, 0.5] + [0, 100]
    with pytest.raises(CoordinateError, match="train table: latitude outside"):
        write_dataset(tmp_path / "out", {"train": sp}, CLASSES)
    with pytest.raises(DatasetError, match="duplicate class name 'a' at position 2"):
        write_dataset(tmp_path / "out", {"train": _split()}, ["a", "b", "a"])
    with pytest.raises(DatasetError, match=re.escape("invalid split name '../x'")):
        write_dataset(tmp_path / "out", {"../x": _split()}, CLASSES)
    assert list(tmp_path.iterdir()) == []


def _corrupt(ds_dir: Path, kind: str) -> None:
    if kind == "parquet":
        (ds_dir / "train.parquet").write_bytes(b"this is not parquet")
    elif kind == "npy":
        data = (ds_dir / "val.features.npy").read_bytes()
        (ds_dir / "val.features.npy").write_bytes(data[: len(data) - 8])
    elif kind == "npz":
        (ds_dir / "val.probs.ratio0.050.npz").write_bytes(b"PK garbage")
    elif kind == "label":
        t = pd.read_parquet(ds_dir / "val.parquet")
        t.loc[3, "label"] = "zebra"
        t.to_parquet(ds_dir / "val.parquet")
    elif kind == "rows":
        m = json.loads((ds_dir / "manifest.json").read_text())
        m["splits"]["val"]["rows"] = 5
        (ds_dir / "manifest.json").write_text(json.dumps(m))
    elif kind == "manifest":
        (ds_dir / "manifest.json").write_text("{\n  oops")
    elif kind == "nan":
        f = np.load(ds_dir / "val.features.npy", mmap_mode="r+")
        f[2, 1] = np.inf
        f.flush()


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("parquet", r"train.parquet: unreadable parquet table"),
        ("npy", r"val.features.npy: unreadable .npy array"),
        ("npz", r"val.probs.ratio0.050.npz: not a scipy sparse .npz matrix"),
        ("label", r"val.parquet:3:label: unknown class 'zebra'"),
        ("rows", r"val.parquet: has 4 rows but the manifest says 5"),
        ("manifest", r"manifest.json:2: invalid JSON"),
        ("nan", r"val.features.npy:2:dim 1: non-finite feature value inf"),
    ],
)
def test_load_reports_file_row_column(ds_dir: Path, kind: str, match: str) -> None:
    _corrupt(ds_dir, kind)
    with pytest.raises(DatasetError, match=match):
        load_dataset(ds_dir)


def test_verify_values_false_skips_the_value_scan(ds_dir: Path) -> None:
    _corrupt(ds_dir, "nan")
    assert np.isinf(load_dataset(ds_dir, verify_values=False).split("val").features[2, 1])


def test_missing_paths(tmp_path: Path, ds_dir: Path) -> None:
    with pytest.raises(MissingFileError, match="dataset directory not found"):
        load_dataset(tmp_path / "nope")
    (ds_dir / "val.probs.npy").unlink()
    with pytest.raises(MissingFileError, match=r"val.probs.npy: file not found"):
        load_dataset(ds_dir)


def test_large_table_is_vectorised(tmp_path: Path) -> None:
    """100k rows write + load well under the test budget (no per-row Python)."""
    n = 100_000
    rng = np.random.default_rng(1)
    t = pd.DataFrame({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-90, 90, n),
                      "label": np.asarray(CLASSES, dtype=object)[rng.integers(0, 3, n)]})
    out = write_dataset(tmp_path / "big", {"train": SplitData(t, np.zeros((n, 8), np.float16))}, CLASSES)
    sp = load_dataset(out).split("train")
    assert len(sp) == n and np.bincount(sp.labels).sum() == n


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pandas example in docs/dataset.md is runnable as written."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "dataset.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(code, "docs/dataset.md", "exec"), scope)
    assert scope["val"].probs().shape == (200, 3) and scope["ds"].classes == ["fox", "hare", "owl"]
