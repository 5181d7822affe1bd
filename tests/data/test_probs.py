"""The probability-key rule and adding image probabilities (import-table --probs, add-probs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.data import SplitData, load_dataset, write_dataset
from geocsp.data.format import check_probs_key, ratio_probs_key
from geocsp.data.probs import add_probs
from geocsp.data.readers.table import import_table
from geocsp.data.validate import check_dataset
from geocsp.errors import ConfigError, DatasetError

CLASSES = ["a", "b", "c"]


def _probs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(3), size=n).astype(np.float32)


def _table(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"lon": np.linspace(-10, 10, n), "lat": np.linspace(-5, 5, n),
                         "label": [CLASSES[i % 3] for i in range(n)]})


@pytest.mark.parametrize("ratio, key", [(None, "default"), (1.0, "default"), (0.05, "ratio0.050"),
                                        (0.1, "ratio0.100"), (0.9999, "default")])
def test_ratio_probs_key(ratio: float | None, key: str) -> None:
    assert ratio_probs_key(ratio) == key


@pytest.mark.parametrize("key, match", [
    ("ratio0.05", "must be 'default' (λ = 1) or 'ratio{λ:.3f}' with λ in (0, 1), e.g. 'ratio0.050'; "
                  "did you mean 'ratio0.050'?"),
    ("ratio1.000", "is the classifier trained on all labels (λ = 1); name it 'default'"),
    ("ratio0.000", "must be 'default'"),
    ("fewshot", "must be 'default'"),
    ("Default", "must be 'default'"),
])
def test_bad_probs_keys_are_refused(key: str, match: str) -> None:
    assert check_probs_key("ratio0.050", "x") == "ratio0.050" and check_probs_key("default", "x") == "default"
    with pytest.raises(DatasetError, match="^val probs: probability key " + re.escape(repr(key) + " ") + ".*"
                       + re.escape(match)):
        check_probs_key(key, "val probs")


def test_write_dataset_refuses_a_bad_key(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"^val probs: probability key 'ratio0.05' .*did you mean 'ratio0.050'\?$"):
        write_dataset(tmp_path / "ds", {"val": SplitData(_table(), probs={"ratio0.05": _probs(6)})}, CLASSES)
    assert not (tmp_path / "ds").exists()


def test_load_and_check_refuse_a_bad_key_in_the_manifest(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", {"val": SplitData(_table(), probs={"ratio0.050": _probs(6)})}, CLASSES)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["splits"]["val"]["probs"] = {"ratio0.05": manifest["splits"]["val"]["probs"]["ratio0.050"]}
    (ds / "manifest.json").write_text(json.dumps(manifest))
    line = f"{ds / 'manifest.json'}: split 'val': probability key 'ratio0.05' must be"
    with pytest.raises(DatasetError, match="^" + re.escape(line)):
        load_dataset(ds)
    report = check_dataset(ds)
    assert len(report.problems) == 1 and report.problems[0].startswith(line)


def test_probs_that_are_not_a_mapping_are_one_line(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", {"val": SplitData(_table(), probs={"ratio0.050": _probs(6)})}, CLASSES)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["splits"]["val"]["probs"] = list(manifest["splits"]["val"]["probs"].values())
    (ds / "manifest.json").write_text(json.dumps(manifest))
    line = f"{ds / 'manifest.json'}:splits: split 'val': \"probs\" must map probability keys to file names, got list"
    with pytest.raises(DatasetError, match="^" + re.escape(line) + "$"):
        load_dataset(ds)
    report = check_dataset(ds)
    assert report.problems == [line]  # one line, not a traceback


def test_add_probs_round_trip_and_overwrite(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", {"train": SplitData(_table(8)), "val": SplitData(_table())}, CLASSES)
    p = _probs(6)
    np.save(tmp_path / "p.npy", p)
    out = add_probs(ds, "val", "ratio0.100", tmp_path / "p.npy")
    assert out == ds / "val.probs.ratio0.100.npy"
    np.testing.assert_array_equal(load_dataset(ds).split("val").probs("ratio0.100"), p)
    with pytest.raises(ConfigError, match=r"already has probabilities .ratio0\.100.; pass --overwrite"):
        add_probs(ds, "val", "ratio0.100", tmp_path / "p.npy")
    np.save(tmp_path / "q.npy", _probs(6, seed=1))
    add_probs(ds, "val", "ratio0.100", tmp_path / "q.npy", overwrite=True)
    np.testing.assert_array_equal(load_dataset(ds).split("val").probs("ratio0.100"), _probs(6, seed=1))
    assert sorted(x.name for x in ds.iterdir() if x.name.startswith(".")) == []  # no temporaries left


@pytest.mark.parametrize("make, match", [
    (lambda: _probs(5), r"must have shape \(N=6, Q=3\), got \(5, 3\)"),
    (lambda: _probs(6) * 0.5, r"p.npy:0: row sums to 0.5; expected 1 within 0.001"),
    (lambda: np.where(np.arange(18).reshape(6, 3) == 4, np.nan, _probs(6)), r"p.npy:1:class 1: probability nan"),
])
def test_add_probs_refuses_bad_arrays_and_keys(tmp_path: Path, make, match: str) -> None:
    ds = write_dataset(tmp_path / "ds", {"val": SplitData(_table())}, CLASSES)
    before = (ds / "manifest.json").read_text()
    np.save(tmp_path / "p.npy", make().astype(np.float32))
    with pytest.raises(DatasetError, match=match):
        add_probs(ds, "val", "default", tmp_path / "p.npy")
    np.save(tmp_path / "p.npy", _probs(6))
    with pytest.raises(DatasetError, match=r"^--key: probability key 'ratio1.000' .*name it 'default'"):
        add_probs(ds, "val", "ratio1.000", tmp_path / "p.npy")
    with pytest.raises(DatasetError, match="no split 'test'"):
        add_probs(ds, "test", "default", tmp_path / "p.npy")
    assert (ds / "manifest.json").read_text() == before and sorted(f.name for f in ds.iterdir()) == [
        "manifest.json", "val.parquet"]


def test_add_probs_cli(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", {"val": SplitData(_table())}, CLASSES)
    np.save(tmp_path / "p.npy", _probs(6))
    r = CliRunner().invoke(cli, ["data", "add-probs", str(ds), str(tmp_path / "p.npy"), "--split", "val",
                                 "--key", "ratio0.050"])
    assert r.exit_code == 0, r.output
    assert load_dataset(ds).split("val").prob_keys == ["ratio0.050"]
    r = CliRunner().invoke(cli, ["data", "add-probs", str(ds), str(tmp_path / "p.npy"), "--split", "val",
                                 "--key", "ratio0.05"])
    assert r.exit_code == 2 and "did you mean 'ratio0.050'?" in r.output and "Traceback" not in r.output


def test_import_table_with_probs_and_split_column(tmp_path: Path) -> None:
    t = _table(9)
    t["part"] = ["train", "val", "calib"] * 3
    t["elev"] = np.arange(9.0)
    t.to_csv(tmp_path / "t.csv", index=False)
    full, few = _probs(9), _probs(9, seed=2)
    np.save(tmp_path / "full.npy", full)
    np.save(tmp_path / "few.npy", few)
    r = CliRunner().invoke(cli, ["data", "import-table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "ds"),
                                 "--label-col", "label", "--split-col", "part",
                                 "--probs", f"default={tmp_path / 'full.npy'}",
                                 "--probs", f"ratio0.100={tmp_path / 'few.npy'}"])
    assert r.exit_code == 0, r.output
    ds = load_dataset(tmp_path / "ds")
    assert ds.split_names == ["train", "val", "calib"] and ds.classes == CLASSES
    for i, name in enumerate(ds.split_names):
        s = ds.split(name)
        assert s.prob_keys == ["default", "ratio0.100"] and "part" not in s.table.columns
        np.testing.assert_array_equal(s.table["elev"], np.arange(i, 9, 3))
        np.testing.assert_array_equal(s.probs("default"), full[i::3])
        np.testing.assert_array_equal(s.probs("ratio0.100"), few[i::3])


def test_import_table_refuses_bad_probs(tmp_path: Path) -> None:
    t = _table(6)
    t.to_csv(tmp_path / "t.csv", index=False)
    np.save(tmp_path / "p.npy", _probs(6))
    with pytest.raises(DatasetError, match=r"^--probs ratio0.05=.*p.npy: probability key 'ratio0.05' .*'ratio0.050'\?$"):
        import_table(tmp_path / "t.csv", tmp_path / "ds", label_col="label", probs={"ratio0.05": tmp_path / "p.npy"})
    t.rename(columns={"label": "species"}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DatasetError, match="probabilities need the class list; give --label-col or --classes"):
        import_table(tmp_path / "s.csv", tmp_path / "ds", probs={"default": tmp_path / "p.npy"})
    t["part"] = ["train", None, "val", "val", "train", "val"]
    t.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DatasetError, match=r"t.csv:1:part: empty split name; every row needs one"):
        import_table(tmp_path / "t.csv", tmp_path / "ds", label_col="label", split_col="part")
    with pytest.raises(DatasetError, match=r"column 'nope' \(--split-col\) not found"):
        import_table(tmp_path / "t.csv", tmp_path / "ds", label_col="label", split_col="nope")
    assert not (tmp_path / "ds").exists()
