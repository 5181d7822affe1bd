"""GeoWorld's image probabilities on ``train`` and ``unlabeled`` (``extra_probs_topk``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from geocsp.data.dataset import load_dataset
from geocsp.data.geoworld import GeoWorldConfig, default_world_dir, generate_world, make_world
from geocsp.data.geoworld.classifier import classifier_probs_many
from geocsp.errors import ConfigError

from .gwutils import TINY, world_arrays

SPARSE = dataclasses.replace(TINY, extra_probs_topk=5, calib_per_class=2)


def test_extra_probs_change_no_existing_array() -> None:
    plain = generate_world(dataclasses.replace(SPARSE, extra_probs_topk=0), 3)
    world = generate_world(SPARSE, 3)
    a, b = world_arrays(plain), world_arrays(world)
    added = set(b) - set(a)
    assert added == {k for k in b if k.startswith(("train.probs.", "unlabeled.probs."))}
    assert {k.split(".probs.")[1] for k in added} == set(world.splits["val"].probs)
    for k in a:  # val / calib probabilities, features, locations and truth: bit-identical
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_extra_probs_are_the_val_heads_top_k() -> None:
    world = generate_world(SPARSE, 3)
    index = {c: i for i, c in enumerate(world.classes)}
    tr, un = world.splits["train"], world.splits["unlabeled"]
    y = np.array([index[c] for c in tr.table["label"]])
    dense = classifier_probs_many(tr.features, y, [un.features], SPARSE.num_classes, SPARSE.ratios,
                                  SPARSE.classifier(), 3)[0]
    for key, p in un.probs.items():
        assert p.shape == (len(un.table), SPARSE.num_classes) and p.getnnz(axis=1).max() == 5
        np.testing.assert_allclose(np.asarray(p.sum(axis=1)).ravel(), 1.0, atol=1e-5)
        top = np.argsort(-dense[key], axis=1)[:, :5]  # the same head's 5 largest classes
        got = np.sort(p.indices.reshape(-1, 5), axis=1)
        np.testing.assert_array_equal(got, np.sort(top, axis=1), err_msg=key)


def test_train_rows_of_each_head_are_scored_out_of_fold() -> None:
    """A head's own λ-subset rows on train: out-of-fold (K heads without their fold); the rest as before."""
    from geocsp.data.splits import stratified_subset

    inside = generate_world(dataclasses.replace(SPARSE, train_oof_folds=0), 3)
    oof = generate_world(SPARSE, 3)
    for name in ("val", "calib", "unlabeled"):  # every other split: bit-identical
        for key, p in inside.splits[name].probs.items():
            q = oof.splits[name].probs[key]
            assert (p != q).nnz == 0 if hasattr(p, "nnz") else np.array_equal(p, q), (name, key)
    index = {c: i for i, c in enumerate(oof.classes)}
    y = np.array([index[c] for c in oof.splits["train"].table["label"]])
    for ratio in sorted(set(SPARSE.ratios) | {1.0}):
        key = "default" if ratio == 1.0 else f"ratio{ratio:.3f}"
        a, b = inside.splits["train"].probs[key].toarray(), oof.splits["train"].probs[key].toarray()
        rows = stratified_subset(y, ratio, 3)
        outside = np.setdiff1d(np.arange(len(y)), rows)
        np.testing.assert_array_equal(a[outside], b[outside], err_msg=key)
        assert not np.array_equal(a[rows], b[rows]), key  # the subset rows were re-scored
        assert (a[rows].argmax(1) == y[rows]).mean() >= (b[rows].argmax(1) == y[rows]).mean(), key  # in-sample wins
    with pytest.raises(ConfigError, match="train_oof_folds"):
        GeoWorldConfig(train_oof_folds=1)


def test_topk_per_matrix_must_match() -> None:
    world = generate_world(TINY, 1)
    tr = world.splits["train"]
    y = np.zeros(len(tr.table), np.int64)
    with pytest.raises(ValueError, match="one value per matrix"):
        classifier_probs_many(tr.features, y, [tr.features], TINY.num_classes, (0.5,), TINY.classifier(), 1,
                              topk=[0, 5])


def test_knob_is_validated() -> None:
    with pytest.raises(ConfigError, match="extra_probs_topk"):
        GeoWorldConfig(extra_probs_topk=-1)


def test_cached_world_of_an_older_generator_is_regenerated(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEOCSP_CACHE", str(tmp_path))
    path = make_world("small", seed=0)
    assert path == default_world_dir("small", 0)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["provenance"]["geoworld"]["version"] == 5
    assert sorted(load_dataset(path).split("unlabeled").prob_keys) == ["default", "ratio0.050", "ratio0.100",
                                                                        "ratio0.200"]
    # a version-3 world in the cache (no train / unlabeled probabilities): regenerated in place
    assert "extra_probs_topk" not in manifest["provenance"]["geoworld"]["config"]  # the default: cache name kept
    manifest["provenance"]["geoworld"]["version"] = 3
    for split in ("train", "unlabeled"):
        for file in manifest["splits"][split].pop("probs").values():
            (path / file).unlink()
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load_dataset(path).split("train").prob_keys == []
    assert make_world("small", seed=0) == path
    again = load_dataset(path)
    assert again.manifest["provenance"]["geoworld"]["version"] == 5
    assert again.split("train").prob_keys == again.split("val").prob_keys
