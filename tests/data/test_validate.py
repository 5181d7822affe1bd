"""Tests of check_dataset and the `geocsp data` CLI (exit codes, messages, no tracebacks)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.data import SplitData, check_dataset, load_dataset, write_dataset
from geocsp.data.validate import format_report

_spec = importlib.util.spec_from_file_location("make_inat", Path(__file__).parent / "fixtures" / "make_inat.py")
make_inat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_inat)

CLASSES = [f"c{i}" for i in range(12)]


@pytest.fixture
def ds_dir(tmp_path: Path) -> Path:
    n = 40
    labels = [CLASSES[min(i // 3, 11)] for i in range(n)]
    lon, lat = np.linspace(-100, 100, n), np.linspace(-50, 50, n)
    lon[7] = lat[7] = np.nan
    t = pd.DataFrame({"lon": lon, "lat": lat, "label": labels})
    feats = np.ones((n, 3), np.float32)
    probs = np.full((n, 12), 1 / 12, np.float32)
    return write_dataset(tmp_path / "ds", {"train": SplitData(t, feats), "val": SplitData(t, feats, {"default": probs})}, CLASSES)


def test_summary(ds_dir: Path) -> None:
    r = check_dataset(ds_dir)
    assert r.ok
    tr = r.summary["splits"]["train"]
    assert tr["rows"] == 40 and tr["missing_locations"] == 1
    assert tr["extent"] == {"lon": [-100.0, 100.0], "lat": [-50.0, 50.0]}
    assert tr["features"] == {"dim": 3, "dtype": "float32"}
    assert tr["labels"]["head"][0] == ["c11", 7] and tr["labels"]["tail"][-1] == ["c10", 3]
    text = format_report(r)
    assert "train: 40 rows, 1 missing locations" in text and "probs: default" in text
    assert text.endswith("check: OK")


def test_collects_all_problems(ds_dir: Path) -> None:
    t = pd.read_parquet(ds_dir / "train.parquet")
    t.loc[5, "label"] = "zebra"
    t.to_parquet(ds_dir / "train.parquet")
    f = np.load(ds_dir / "train.features.npy", mmap_mode="r+")
    f[9, 2] = np.nan
    f.flush()
    (ds_dir / "val.probs.npy").write_bytes(b"\x93NUMPY garbage")
    r = check_dataset(ds_dir)
    assert not r.ok and len(r.problems) == 3
    assert r.problems[0].endswith("train.parquet:5:label: unknown class 'zebra'; expected a name from the manifest classes (12 classes)")
    assert "train.features.npy:9:dim 2: non-finite feature value nan" in r.problems[1]
    assert "val.probs.npy: unreadable .npy array" in r.problems[2]
    assert r.summary["splits"]["val"]["rows"] == 40  # the rest is still summarised
    assert all("\n" not in p for p in r.problems)


def test_cli_check_ok_and_json(ds_dir: Path) -> None:
    res = CliRunner().invoke(cli, ["data", "check", str(ds_dir)])
    assert res.exit_code == 0, res.output
    assert "check: OK" in res.stdout
    res = CliRunner().invoke(cli, ["data", "check", str(ds_dir), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["summary"]["classes"] == 12


def test_cli_check_exit_2_with_problem_lines(ds_dir: Path) -> None:
    (ds_dir / "train.parquet").write_bytes(b"garbage")
    res = CliRunner().invoke(cli, ["data", "check", str(ds_dir)])
    assert res.exit_code == 2
    assert "train.parquet: unreadable parquet table" in res.stderr
    assert "geocsp: error:" in res.stderr and "1 problem(s) found" in res.stderr
    assert "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["data", "check", str(ds_dir.parent / "missing")])
    assert res.exit_code == 2 and "dataset directory not found" in res.stderr


def test_cli_import_inat(tmp_path: Path) -> None:
    src = make_inat.make_inat(tmp_path / "src", "fmow")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["data", "import-inat", str(src), "--dataset", "fmow", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert load_dataset(out).split("val").prob_keys == ["default", "ratio0.050", "ratio0.100"]
    res = CliRunner().invoke(cli, ["data", "import-inat", str(src), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "categories2018.json: file not found" in res.stderr
    assert not (tmp_path / "o2").exists()


def test_cli_import_table(tmp_path: Path) -> None:
    csv = tmp_path / "obs.csv"
    csv.write_text("longitude,latitude,sp\n10,20,fox\n11,21,owl\n12,22,fox\n")
    np.save(tmp_path / "f.npy", np.ones((3, 2), np.float32))
    out = tmp_path / "out"
    args = ["data", "import-table", str(csv), "--lon-col", "longitude", "--lat-col", "latitude",
            "--label-col", "sp", "--features", str(tmp_path / "f.npy"), "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    ds = load_dataset(out)
    assert ds.classes == ["fox", "owl"] and ds.split("train").labels.tolist() == [0, 1, 0]
    np.save(tmp_path / "f.npy", np.ones((2, 2), np.float32))
    res = CliRunner().invoke(cli, [*args[:-1], str(tmp_path / "out2")])
    assert res.exit_code == 2 and "features have 2 rows but the table has 3" in res.stderr
    assert not (tmp_path / "out2").exists() and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["data", "import-table", str(csv), "--out", str(tmp_path / "o3")])
    assert res.exit_code == 2
    assert "column 'lon' (--lon-col) not found; available columns: longitude, latitude, sp" in res.stderr
