"""Tests of the epoch samplers: determinism, per-class caps and rank partitioning."""

from __future__ import annotations

import numpy as np
import pytest

from geocsp.data.samplers.epoch import ClassBalancedSampler, ShuffleSampler
from geocsp.errors import ConfigError

LABELS = np.repeat(np.arange(6), [1, 3, 10, 50, 120, 7])
LABELS = np.concatenate([LABELS, -np.ones(9, dtype=np.int64)])


def test_class_balanced_caps_each_class() -> None:
    s = ClassBalancedSampler(LABELS, max_per_class=8, seed=0)
    expected = np.minimum(np.bincount(LABELS[LABELS >= 0]), 8)
    assert len(s) == expected.sum() == 1 + 3 + 8 + 8 + 8 + 7
    for epoch in range(3):
        idx = s.epoch_indices(epoch)
        assert idx.dtype == np.int64 and len(np.unique(idx)) == len(idx)  # without replacement
        np.testing.assert_array_equal(np.bincount(LABELS[idx], minlength=6), expected)


def test_class_balanced_epochs_differ_and_cover_big_classes() -> None:
    s = ClassBalancedSampler(LABELS, max_per_class=8, seed=0)
    a, b = s.epoch_indices(0), s.epoch_indices(1)
    np.testing.assert_array_equal(a, ClassBalancedSampler(LABELS, 8, seed=0).epoch_indices(0))
    assert not np.array_equal(np.sort(a), np.sort(b))
    seen = np.unique(np.concatenate([s.epoch_indices(e) for e in range(300)]))
    assert set(np.flatnonzero(LABELS == 4)) <= set(seen)  # every row gets drawn eventually


def test_class_balanced_is_shuffled_not_grouped() -> None:
    idx = ClassBalancedSampler(LABELS, max_per_class=8, seed=0).epoch_indices(0)
    assert np.any(np.diff(LABELS[idx]) < 0)


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("kind", ["shuffle", "balanced"])
def test_ranks_partition_without_overlap(world_size: int, kind: str) -> None:
    def make(rank: int) -> ShuffleSampler | ClassBalancedSampler:
        if kind == "shuffle":
            return ShuffleSampler(101, seed=5, rank=rank, world_size=world_size)
        return ClassBalancedSampler(LABELS, 8, seed=5, rank=rank, world_size=world_size)

    single = make(0).__class__(*([101] if kind == "shuffle" else [LABELS, 8]), seed=5)
    full = single.epoch_indices(2)
    parts = [make(r).epoch_indices(2) for r in range(world_size)]
    per = len(full) // world_size
    assert all(len(p) == per == len(make(r)) for r, p in enumerate(parts))
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined)  # disjoint
    np.testing.assert_array_equal(np.sort(joined), np.sort(full[: per * world_size]))  # complete


def test_shuffle_is_a_permutation_and_iterable() -> None:
    s = ShuffleSampler(50, seed=1)
    np.testing.assert_array_equal(np.sort(s.epoch_indices(0)), np.arange(50))
    s.set_epoch(3)
    assert list(s) == s.epoch_indices(3).tolist()
    assert not np.array_equal(s.epoch_indices(0), s.epoch_indices(3))


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError, match=r"rank must be in \[0, 2\), got 2"):
        ShuffleSampler(10, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="max_per_class must be >= 1"):
        ClassBalancedSampler(LABELS, max_per_class=0)
    with pytest.raises(ConfigError, match="at least one labelled row"):
        ClassBalancedSampler(-np.ones(4, dtype=np.int64))


def test_scales_to_many_classes() -> None:
    lab = np.random.default_rng(0).integers(0, 8000, 400_000)
    s = ClassBalancedSampler(lab, max_per_class=30, seed=0, rank=1, world_size=4)
    idx = s.epoch_indices(0)
    assert len(idx) == len(s) == np.minimum(np.bincount(lab), 30).sum() // 4
