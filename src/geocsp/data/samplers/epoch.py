"""Epoch samplers: which row indices a rank sees in an epoch (spec §4.6).

Both samplers draw one global permutation from ``(seed, epoch)`` -- the same on every
rank -- and give rank r the elements r, r + W, r + 2W, ... of its first
``W * (len // W)`` entries (as ``torch.utils.data.DistributedSampler(drop_last=True)``), so
ranks never overlap and all see the same count. They are also iterable (``set_epoch`` +
``__iter__``) and can be passed to a torch ``DataLoader`` as ``sampler=``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from geocsp.data.splits import take_per_class
from geocsp.errors import ConfigError


class _EpochSampler:
    """Shared rank partitioning and iteration; subclasses implement ``_global(rng)``."""

    def __init__(self, seed: int, rank: int, world_size: int) -> None:
        if int(world_size) < 1:
            raise ConfigError(f"world_size must be >= 1, got {world_size}")
        if not 0 <= int(rank) < int(world_size):
            raise ConfigError(f"rank must be in [0, {world_size}), got {rank}")
        if int(seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def _global_size(self) -> int:
        raise NotImplementedError

    def _global(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """This rank's row indices for ``epoch``, in visiting order.

        Returns:
            (len(self),) int64 indices, deterministic in (seed, epoch, rank, world_size).
        """
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = self._global(rng)
        usable = len(self) * self.world_size
        return order[self.rank : usable : self.world_size].astype(np.int64, copy=False)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that ``__iter__`` yields (like DistributedSampler)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch).tolist())

    def __len__(self) -> int:
        return self._global_size() // self.world_size


class ShuffleSampler(_EpochSampler):
    """Plain shuffling of all N rows, reshuffled every epoch.

    Args:
        n: number of rows.
        seed: base seed.
        rank: this process's rank.
        world_size: number of processes.

    Raises:
        ConfigError: on n < 1 or an invalid rank / world size / seed.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(seed, rank, world_size)
        if int(n) < 1:
            raise ConfigError(f"ShuffleSampler needs n >= 1 rows, got {n}")
        self.n = int(n)

    def _global_size(self) -> int:
        return self.n

    def _global(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.n)


class ClassBalancedSampler(_EpochSampler):
    """Class-balanced epochs (the reference's ``balanced_train_loader``, spec §4.6).

    Each epoch draws, without replacement, min(n_c, max_per_class) rows of every class c and
    shuffles them, so an epoch has sum_c min(n_c, max_per_class) rows. Rows labelled -1
    are never drawn. Fully vectorised (random keys + lexsort), no loop over classes.

    Args:
        labels: (N,) int class indices, -1 = unlabelled.
        max_per_class: k, the per-class cap per epoch.
        seed: base seed.
        rank: this process's rank.
        world_size: number of processes.

    Raises:
        ConfigError: on max_per_class < 1, no labelled rows, or invalid rank/world size/seed.
    """

    def __init__(
        self, labels: np.ndarray, max_per_class: int = 100, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        super().__init__(seed, rank, world_size)
        lab = np.asarray(labels)
        if lab.ndim != 1 or (lab.size and lab.dtype.kind not in "iu"):
            raise ConfigError(f"labels must be a 1-D integer array, got shape {lab.shape} dtype {lab.dtype}")
        if int(max_per_class) < 1:
            raise ConfigError(f"max_per_class must be >= 1, got {max_per_class}")
        self.labels = lab.astype(np.int64, copy=False)
        self.max_per_class = int(max_per_class)
        counts = np.bincount(self.labels[self.labels >= 0], minlength=1)
        if counts.sum() == 0:
            raise ConfigError("ClassBalancedSampler needs at least one labelled row (label >= 0)")
        self._k = np.minimum(counts, self.max_per_class)
        self._size = int(self._k.sum())

    def _global_size(self) -> int:
        return self._size

    def _global(self, rng: np.random.Generator) -> np.ndarray:
        chosen = take_per_class(self.labels, self._k, rng)
        return chosen[rng.permutation(len(chosen))]
