"""Tests of GeoWorld's held-out ``calib`` split and the ``default-calib`` / ``longtail`` presets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from geocsp.data.geoworld import (
    WORLD_PRESETS,
    classifier_probs_many,
    default_world_dir,
    generate_world,
    get_world_config,
)
from geocsp.data.geoworld.store import _identity
from geocsp.errors import ConfigError

from .gwutils import TINY, world_arrays

CALIB = dataclasses.replace(TINY, calib_per_class=3, val_missing_frac=0.1)


def _labels(world, split: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(world.classes)}
    return np.array([index[c] for c in world.splits[split].table["label"]])


def test_calib_split_only_when_the_knob_is_positive() -> None:
    plain = generate_world(dataclasses.replace(CALIB, calib_per_class=0), 2)
    world = generate_world(CALIB, 2)
    assert list(plain.splits) == ["train", "unlabeled", "val"]
    assert list(world.splits) == ["train", "unlabeled", "val", "calib"]
    cal, val = world.splits["calib"], world.splits["val"]
    assert np.bincount(_labels(world, "calib")).tolist() == [3] * TINY.num_classes
    assert cal.table[["lon", "lat"]].isna().all(axis=1).sum() == round(0.1 * 3 * TINY.num_classes)
    assert cal.features.shape == (3 * TINY.num_classes, TINY.feature_dim)
    assert list(cal.probs) == list(val.probs)
    for p in cal.probs.values():
        np.testing.assert_allclose(np.asarray(p).sum(1), 1.0, atol=1e-4)
    # the calib stream is independent: every other array is bit-identical without it
    a, b = world_arrays(plain), world_arrays(world)
    assert set(b) - set(a) == {k for k in b if k.startswith("calib.")}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not np.array_equal(b["calib.features"][:4], b["val.features"][:4])


def test_calib_probs_come_from_the_val_heads() -> None:
    world = generate_world(CALIB, 4)
    tr, va, ca = (world.splits[n] for n in ("train", "val", "calib"))
    args = (CALIB.num_classes, CALIB.ratios, CALIB.classifier(), 4)
    y = _labels(world, "train")
    many = classifier_probs_many(tr.features, y, [va.features, ca.features], *args)
    for got, feats in zip(many, (va.features, ca.features), strict=True):
        alone = classifier_probs_many(tr.features, y, [feats], *args)[0]
        assert list(got) == list(alone)
        for k in alone:
            np.testing.assert_array_equal(got[k], alone[k], err_msg=k)
    for k in ca.probs:
        np.testing.assert_array_equal(ca.probs[k], many[1][k], err_msg=k)
        np.testing.assert_array_equal(va.probs[k], many[0][k], err_msg=k)


def test_spawned_streams_keep_their_index() -> None:
    five, six = np.random.SeedSequence(11).spawn(5), np.random.SeedSequence(11).spawn(6)
    for a, b in zip(five, six, strict=False):
        np.testing.assert_array_equal(a.generate_state(4), b.generate_state(4))


def test_identity_of_worlds_without_calib_is_unchanged() -> None:
    assert "calib_per_class" not in TINY.identity()
    assert CALIB.identity()["calib_per_class"] == 3
    assert default_world_dir("small", 0).name == "small-seed0"
    assert default_world_dir("small", 0, get_world_config("small")).name == "small-seed0"
    # the cache hash of this override, pinned before the knob existed (generator version 2)
    over = get_world_config("small", **{f.name: getattr(TINY, f.name) for f in dataclasses.fields(TINY)})
    assert default_world_dir("small", 0, over).name == "small-seed0-a455fd59e1"
    with_calib = dataclasses.replace(over, calib_per_class=1)
    assert _identity("small", 0, with_calib)["config"] == {**_identity("small", 0, over)["config"], "calib_per_class": 1}
    assert default_world_dir("small", 0, with_calib).name != "small-seed0-a455fd59e1"


def test_presets_registered() -> None:
    assert {"small", "default", "default-calib", "longtail", "inat-scale"} <= set(WORLD_PRESETS.names())
    for name in ("small", "default", "inat-scale"):
        assert get_world_config(name).calib_per_class == 0
    assert get_world_config("default-calib") == dataclasses.replace(get_world_config("default"), calib_per_class=5)
    with pytest.raises(ConfigError, match="calib_per_class must be >= 0"):
        get_world_config("small", calib_per_class=-1)
    with pytest.raises(ConfigError, match="1 <= min_train_per_class"):
        get_world_config("small", min_train_per_class=0)


def test_longtail_shape_on_a_scaled_down_world() -> None:
    full = get_world_config("longtail")
    assert (full.num_classes, full.min_train_per_class, full.max_train_per_class) == (2000, 1, 10)
    assert (full.val_per_class, full.calib_per_class) == (3, 2)
    cfg = get_world_config("longtail", num_classes=200, num_genera=40, train_rows=600, unlabeled_rows=500,
                           land_mc_samples=100)
    world = generate_world(cfg, 0)
    counts = np.bincount(_labels(world, "train"), minlength=200)
    assert counts.min() == 1 and counts.max() == 10 and counts.sum() == 600
    assert (counts == 1).sum() > 50  # most classes are rare
    np.testing.assert_array_equal(counts, world.truth.train_counts)
    assert np.bincount(_labels(world, "val")).tolist() == [3] * 200
    assert np.bincount(_labels(world, "calib")).tolist() == [2] * 200
    img = np.asarray(world.splits["val"].probs["default"]).argmax(1)
    assert (img == _labels(world, "val")).mean() > 0.3  # a strong image head (chance 0.5 %)
