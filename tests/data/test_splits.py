"""Tests of the stratified label-ratio subset (spec §5) and spatial block splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geocsp.data.splits import (
    load_or_make_subset,
    spatial_block_folds,
    spatial_block_split,
    stratified_subset,
    subset_path,
)
from geocsp.errors import ConfigError, DatasetError


def _labels(sizes: list[int], seed: int = 0) -> np.ndarray:
    lab = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(seed).permutation(lab)


def _reference_k(labels: np.ndarray, ratio: float) -> dict[int, int]:
    """Independent float64 re-implementation: k_c = max(1, round_half_even(ratio * n_c))."""
    out = {}
    for c in np.unique(labels[labels >= 0]):
        n_c = int((labels == c).sum())
        out[int(c)] = max(1, int(np.round(np.float64(ratio) * n_c)))
    return out


def test_hand_computed_counts() -> None:
    # n_c=5: 0.5 -> 0 -> max(1, 0) = 1; n_c=25: 2.5 -> 2 (half-even); n_c=35: 3.5 -> 4;
    # n_c=1: 0.1 -> 1; n_c=14: 1.4 -> 1; n_c=16: 1.6 -> 2.
    sizes = [5, 25, 35, 1, 14, 16]
    lab = _labels(sizes)
    idx = stratified_subset(lab, 0.1, seed=0)
    assert np.bincount(lab[idx], minlength=6).tolist() == [1, 2, 4, 1, 1, 2]


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.2, 0.5, 1.0])
def test_counts_match_reference(ratio: float) -> None:
    lab = _labels([1, 2, 3, 7, 10, 30, 50, 101, 250])
    lab[::17] = -1  # unlabelled rows are ignored
    idx = stratified_subset(lab, ratio, seed=3)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert np.all(lab[idx] >= 0)
    got = dict(zip(*np.unique(lab[idx], return_counts=True), strict=True))
    assert {int(k): int(v) for k, v in got.items()} == _reference_k(lab, ratio)


def test_deterministic_and_seed_dependent() -> None:
    lab = _labels([40] * 20)
    a = stratified_subset(lab, 0.2, seed=1)
    np.testing.assert_array_equal(a, stratified_subset(lab, 0.2, seed=1))
    assert not np.array_equal(a, stratified_subset(lab, 0.2, seed=2))


def test_draw_is_uniform_within_class() -> None:
    """Every row of a class is chosen with probability k/n (here 1/4), over many seeds."""
    lab = np.zeros(8, dtype=np.int64)
    hits = np.zeros(8)
    for s in range(800):
        hits[stratified_subset(lab, 0.25, seed=s)] += 1
    np.testing.assert_allclose(hits / 800, 0.25, atol=0.06)


def test_bad_ratio_and_labels() -> None:
    with pytest.raises(ConfigError, match=r"label ratio must be in \(0, 1\], got 0"):
        stratified_subset(np.zeros(3, np.int64), 0, seed=0)
    with pytest.raises(ConfigError, match="1-D integer array"):
        stratified_subset(np.zeros(3), 0.5, seed=0)


def test_saved_subset_is_reused(tmp_path: Path) -> None:
    lab = _labels([10, 20, 30])
    a = load_or_make_subset(tmp_path, lab, 0.1, seed=0)
    path = subset_path(tmp_path, 0.1, 0)
    assert path == tmp_path / "subset" / "ratio0.100_seed0.npy" and path.is_file()
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), a)
    np.save(path, a[:2])  # a reuse must read the file, not redraw
    np.testing.assert_array_equal(load_or_make_subset(tmp_path, lab, 0.1, seed=0), a[:2])
    with pytest.raises(DatasetError, match="drawn from different labels"):
        load_or_make_subset(tmp_path, lab[:-1], 0.1, seed=0)



@pytest.mark.parametrize("damage", ["no_json", "no_npy", "bad_json", "bad_npy", "empty_npy"])
def test_an_incomplete_saved_subset_is_drawn_again(tmp_path: Path, damage: str) -> None:
    lab = _labels([10, 20, 30])
    a = load_or_make_subset(tmp_path, lab, 0.1, seed=0)
    path = subset_path(tmp_path, 0.1, 0)
    meta = path.with_suffix(".json")
    {"no_json": lambda: meta.unlink(), "no_npy": lambda: path.unlink(),
     "bad_json": lambda: meta.write_text('{"ratio": 0.1, "se'),
     "bad_npy": lambda: path.write_bytes(path.read_bytes()[:40]),
     "empty_npy": lambda: path.write_bytes(b"")}[damage]()
    np.testing.assert_array_equal(load_or_make_subset(tmp_path, lab, 0.1, seed=0), a)
    assert path.is_file() and json.loads(meta.read_text())["n"] == len(lab)
    assert sorted(p.name for p in path.parent.iterdir()) == [meta.name, path.name]


def _cells(lonlat: np.ndarray, block: float) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in np.floor((lonlat + np.array([180.0, 90.0])) / block)}


def test_spatial_block_split_holds_out_whole_cells() -> None:
    rng = np.random.default_rng(0)
    ll = np.column_stack([rng.uniform(-180, 180, 3000), rng.uniform(-90, 90, 3000)])
    ll[:5] = np.nan
    train, test = spatial_block_split(ll, block_deg=20, holdout_frac=0.25, seed=1)
    assert set(train).isdisjoint(test) and len(train) + len(test) == 2995
    assert 0.25 <= len(test) / 2995 < 0.25 + 0.05  # one cell is ~1.2 % of rows
    assert _cells(ll[train], 20).isdisjoint(_cells(ll[test], 20))
    again = spatial_block_split(ll, block_deg=20, holdout_frac=0.25, seed=1)
    np.testing.assert_array_equal(again[1], test)
    assert not np.array_equal(spatial_block_split(ll, 20, 0.25, seed=2)[1], test)


def test_spatial_block_folds_partition() -> None:
    rng = np.random.default_rng(1)
    ll = np.column_stack([rng.uniform(-180, 180, 2000), rng.uniform(-90, 90, 2000)])
    ll[-1] = [180.0, 90.0]  # the edge lands in the last cell, not outside the grid
    folds = spatial_block_folds(ll, block_deg=30, k=4, seed=0)
    tests = [t for _, t in folds]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(2000))
    for i, (train, test) in enumerate(folds):
        assert len(train) + len(test) == 2000
        for j in range(i):
            assert _cells(ll[test], 30).isdisjoint(_cells(ll[tests[j]], 30))
    with pytest.raises(ConfigError, match="k must be >= 2"):
        spatial_block_folds(ll, 30, k=1)
    with pytest.raises(ConfigError, match=r"holdout_frac must be in \(0, 1\)"):
        spatial_block_split(ll, 30, holdout_frac=1.0)
