"""geocsp data split: carving a val split out of a single-split dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.data.dataset import SplitData, load_dataset, write_dataset
from geocsp.data.resplit import split_dataset, split_indices
from geocsp.errors import ConfigError, DatasetError


def _dataset(tmp_path: Path, n: int = 50) -> Path:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-60, 60, n),
                          "label": rng.choice(["a", "b"], n)})
    feats = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return write_dataset(tmp_path / "src", {"train": SplitData(table, feats)}, ["a", "b"])


def test_random_split_partitions_rows_and_keeps_features_aligned(tmp_path: Path) -> None:
    out = split_dataset(_dataset(tmp_path), tmp_path / "out", val_frac=0.2, seed=1)
    ds = load_dataset(out)
    tr, va = ds.split("train"), ds.split("val")
    assert len(tr) + len(va) == 50 and len(va) == 10
    # row i of the source had features [3i, 3i+1, 3i+2]: every row keeps its own features
    src = load_dataset(tmp_path / "src").split("train")
    for s in (tr, va):
        idx = (np.asarray(s.features)[:, 0] / 3).astype(int)
        np.testing.assert_allclose(s.lonlat, src.lonlat[idx])
    assert set((np.asarray(tr.features)[:, 0] / 3).astype(int)).isdisjoint((np.asarray(va.features)[:, 0] / 3).astype(int))


def test_spatial_split_holds_out_whole_blocks() -> None:
    rng = np.random.default_rng(0)
    lonlat = np.c_[rng.uniform(-180, 180, 400), rng.uniform(-80, 80, 400)]
    tr, va = split_indices(lonlat, 0.25, "spatial", 30.0, 0)
    cell = lambda i: set(map(tuple, np.floor(lonlat[i] / 30.0).astype(int)))  # noqa: E731
    assert cell(tr).isdisjoint(cell(va))
    assert len(tr) + len(va) == 400


def test_bad_requests(tmp_path: Path) -> None:
    src = _dataset(tmp_path)
    with pytest.raises(ConfigError, match="val-frac"):
        split_dataset(src, tmp_path / "o1", val_frac=1.5)
    with pytest.raises(DatasetError, match="no split 'test'"):
        split_dataset(src, tmp_path / "o2", source_split="test")
    res = CliRunner().invoke(cli, ["data", "split", str(src), "--out", str(tmp_path / "o3"), "--from", "nope"])
    assert res.exit_code == 2 and "no split 'nope'" in res.output
    assert not (tmp_path / "o3").exists()


def test_a_spatial_split_inside_one_block_names_block_deg(tmp_path: Path) -> None:
    """A small region (DISDAT's AWT is ~2° × 4°) falls in one 10° block: the message says what to change."""
    table = pd.DataFrame({"lon": np.linspace(145.1, 145.9, 40), "lat": np.linspace(-17.1, -16.2, 40),
                          "label": ["a", "b"] * 20})
    src = write_dataset(tmp_path / "src", {"train": SplitData(table)}, ["a", "b"])
    with pytest.raises(DatasetError, match=r"too small to hold out 20%; with --method spatial all its rows may lie "
                                           r"in one 10° block: pass a smaller --block-deg or --method random"):
        split_dataset(src, tmp_path / "o", val_frac=0.2, method="spatial")
    assert load_dataset(split_dataset(src, tmp_path / "o2", val_frac=0.2, method="spatial",
                                      block_deg=0.2)).split("val") is not None


def _labelled(tmp_path: Path) -> Path:
    """A dataset with train and a val split (3 classes of 1, 4 and 20 rows + 5 unlabelled) carrying probabilities."""
    rng = np.random.default_rng(0)
    labels = ["a"] * 1 + ["b"] * 4 + ["c"] * 20 + [""] * 5
    n = len(labels)
    val = pd.DataFrame({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-60, 60, n),
                        "label": [x or None for x in labels]})
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    probs[:, 0] = np.arange(n) / 1000  # row i's probabilities name it: they must follow the row
    train = pd.DataFrame({"lon": [0.0, 1.0, 2.0], "lat": [0.0, 1.0, 2.0], "label": ["a", "b", "c"]})
    return write_dataset(tmp_path / "src", {"train": SplitData(train), "val": SplitData(val, None, {"default": probs})},
                         ["a", "b", "c"])


def test_calib_held_out_of_val_stratified(tmp_path: Path) -> None:
    src = _labelled(tmp_path)
    res = CliRunner().invoke(cli, ["data", "split", str(src), "--out", str(tmp_path / "out"), "--from", "val",
                                   "--hold-out", "calib", "--frac", "0.25", "--method", "stratified"])
    assert res.exit_code == 0, res.output
    assert "(calib: 7 rows = 23.3% of val's 30, asked 25.0%)" in res.output  # what was held out, said
    ds = load_dataset(tmp_path / "out")
    assert sorted(ds.split_names) == ["calib", "train", "val"]
    assert len(ds.split("train")) == 3  # untouched
    va, ca = ds.split("val"), ds.split("calib")
    assert len(va) + len(ca) == 30
    # per class: a (1 row) stays in val; b (4): 1 held out; c (20): 5 held out; unlabelled (5): round(1.25) = 1
    def count(s: object, c: int) -> int:
        return int((s.labels == c).sum())  # type: ignore[attr-defined]
    assert [count(ca, c) for c in (0, 1, 2, -1)] == [0, 1, 5, 1]
    assert [count(va, c) for c in (0, 1, 2, -1)] == [1, 3, 15, 4]
    def ids(s: object) -> np.ndarray:
        return np.rint(np.asarray(s.probs("default"))[:, 0] * 1000).astype(int)  # type: ignore[attr-defined]
    assert sorted(np.r_[ids(va), ids(ca)]) == list(range(30))  # probabilities followed their rows, none lost
    src_val = load_dataset(src).split("val")
    for s in (va, ca):
        np.testing.assert_allclose(s.lonlat, src_val.lonlat[ids(s)])
    assert load_dataset(tmp_path / "out").manifest["provenance"]["resplit"]["hold_out"] == "calib"


def test_stratified_split_is_seeded_and_keeps_a_row_per_class() -> None:
    labels = np.repeat(np.arange(10), np.arange(1, 11))
    lonlat = np.zeros((len(labels), 2))
    a = split_indices(lonlat, 0.5, "stratified", 10.0, 3, labels=labels)
    b = split_indices(lonlat, 0.5, "stratified", 10.0, 3, labels=labels)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    kept, held = a
    assert set(labels[kept]) == set(range(10))            # every class keeps a row
    assert set(labels[held]) == set(range(1, 10))         # every class with >= 2 rows gives one
    with pytest.raises(DatasetError, match="stratified needs labelled rows"):
        split_indices(lonlat, 0.5, "stratified", 10.0, 0, labels=None)


def test_hold_out_refuses_an_existing_split(tmp_path: Path) -> None:
    src = _labelled(tmp_path)
    res = CliRunner().invoke(cli, ["data", "split", str(src), "--out", str(tmp_path / "o"), "--from", "val",
                                   "--hold-out", "train"])
    assert res.exit_code == 2 and "already has a 'train' split" in res.output
    assert not (tmp_path / "o").exists()


def test_a_stratified_hold_out_larger_than_asked_says_why(tmp_path: Path) -> None:
    """1 % of 30 rows of 3 classes: stratified still holds out a row per class; the output says so."""
    res = CliRunner().invoke(cli, ["data", "split", str(_labelled(tmp_path)), "--out", str(tmp_path / "o"),
                                   "--from", "val", "--hold-out", "calib", "--frac", "0.01", "--method", "stratified"])
    assert res.exit_code == 0, res.output
    assert "asked 1.0%; stratified holds out at least one row of every class with two or more)" in res.output
