"""Tests of geocsp.data.geoworld.store (make_world, world_report) and ``geocsp data make-world``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.data.dataset import load_dataset
from geocsp.data.geoworld import get_world_config, make_world, world_report
from geocsp.errors import DatasetError

from .gwutils import TINY


def test_small_world_layout(small) -> None:
    _, ds = small
    cfg = get_world_config("small")
    assert ds.split_names == ["train", "unlabeled", "val"]
    assert len(ds.classes) == cfg.num_classes
    tr, un, va = (ds.split(n) for n in ds.split_names)
    assert len(tr) == cfg.train_rows and len(un) == cfg.unlabeled_rows
    assert len(va) == cfg.num_classes * cfg.val_per_class
    for s in (tr, un, va):
        assert s.features.dtype == np.float32 and s.features.shape == (len(s), cfg.feature_dim)
    assert (un.labels == -1).all() and (tr.labels >= 0).all()
    assert np.bincount(va.labels).tolist() == [cfg.val_per_class] * cfg.num_classes
    assert (~va.has_location).sum() == round(0.01 * len(va)) and tr.has_location.all()
    assert sorted(va.prob_keys) == ["default", "ratio0.050", "ratio0.100", "ratio0.200"]  # λ = 1 is "default"
    for key in va.prob_keys:
        p = va.probs(key)
        assert p.shape == (len(va), cfg.num_classes)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
    prov = ds.manifest["provenance"]["geoworld"]
    assert prov["preset"] == "small" and prov["seed"] == 0 and prov["config"]["feature_dim"] == 32


def test_classifier_and_report(small) -> None:
    path, _ = small
    r = world_report(path)
    img = r["image_top1"]
    assert img["default"] > 5 * r["chance_top1"]
    assert img["default"] > img["ratio0.050"]
    assert r["location_top1"] > 2 * r["chance_top1"]
    assert r["oracle_top1"] >= img["default"]
    assert r["val_missing_location"] == 4 and r["preset"] == "small"


def test_make_world_reuses_and_refuses(tmp_path) -> None:
    out = tmp_path / "w"
    kw = dataclasses.asdict(TINY)
    kw["ratios"] = (0.5, 1.0)
    make_world("small", 1, out=out, **kw)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert make_world("small", 1, out=out, **kw) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert load_dataset(out).split("val").prob_keys == ["ratio0.500", "default"]
    with pytest.raises(DatasetError, match="pass overwrite=True"):
        make_world("small", 2, out=out, **kw)


def test_cli_make_world(tmp_path) -> None:
    sets = ["--set", "num_classes=12", "--set", "num_genera=4", "--set", "feature_dim=8",
            "--set", "train_rows=240", "--set", "unlabeled_rows=100", "--set", "val_per_class=4",
            "--set", "land_mc_samples=200"]
    out = tmp_path / "cli"
    res = CliRunner().invoke(cli, ["data", "make-world", "--preset", "small", "--seed", "0",
                                   "--out", str(out), *sets])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == str(out) and "12 classes" in res.output
    assert load_dataset(out).split("train").features.shape == (240, 8)
    assert json.loads((out / "manifest.json").read_text())["provenance"]["geoworld"]["preset"] == "small"


def test_cli_bad_preset_is_one_line_exit_2(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["data", "make-world", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown GeoWorld preset 'huge'" in lines[0]
    assert not (tmp_path / "x").exists()
