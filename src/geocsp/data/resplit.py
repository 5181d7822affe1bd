"""Derive a validation split from a dataset that has only one (``geocsp data split``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geocsp.data.dataset import Split, SplitData, load_dataset, write_dataset
from geocsp.data.splits import spatial_block_split
from geocsp.data.tables import refuse_existing
from geocsp.errors import ConfigError, DatasetError


def split_indices(lonlat: np.ndarray, val_frac: float, method: str, block_deg: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) of a random or spatial-block hold-out.

    Rows with a missing location stay in train for ``spatial`` (they belong to no block)
    and are split like any row for ``random``.

    Raises:
        ConfigError: on an unknown method or a fraction outside (0, 1).
    """
    if not 0.0 < val_frac < 1.0:
        raise ConfigError(f"--val-frac must be in (0, 1), got {val_frac}")
    n = len(lonlat)
    if method == "random":
        perm = np.random.default_rng(seed).permutation(n)
        k = max(1, round(val_frac * n))
        return np.sort(perm[k:]), np.sort(perm[:k])
    if method == "spatial":
        train, val = spatial_block_split(lonlat, block_deg=block_deg, holdout_frac=val_frac, seed=seed)
        missing = np.flatnonzero(np.isnan(lonlat).all(axis=1))
        return np.sort(np.concatenate([train, missing])), val
    raise ConfigError(f"unknown split method '{method}'; expected random or spatial")


def split_dataset(src: str | Path, out: str | Path, *, source_split: str = "train",
                  val_frac: float = 0.2, method: str = "random", block_deg: float = 10.0,
                  seed: int = 0, overwrite: bool = False) -> Path:
    """Write a copy of dataset ``src`` whose ``source_split`` becomes ``train`` + ``val``.

    Other splits are copied unchanged (a split already called ``val`` is refused).
    Features and probabilities follow their rows.

    Args:
        src: the dataset directory.
        out: the new dataset directory (an existing one is refused unless ``overwrite``).
        source_split: the split to divide.
        val_frac: fraction of its rows held out as ``val``.
        method: ``random`` rows or ``spatial`` lon/lat blocks.
        block_deg: block size in degrees for ``spatial``.
        seed: the split's seed.
        overwrite: replace an existing dataset at ``out``.

    Returns:
        The new dataset directory.

    Raises:
        DatasetError: when ``source_split`` is missing or ``val`` already exists.
        ConfigError: on an existing ``out`` without ``overwrite``.
    """
    refuse_existing(out, overwrite)
    ds = load_dataset(src)
    if source_split not in ds.split_names:
        raise DatasetError(f"{src}: no split '{source_split}' (have {', '.join(ds.split_names)})")
    if "val" in ds.split_names:
        raise DatasetError(f"{src}: already has a 'val' split")
    s = ds.split(source_split)
    tr, va = split_indices(s.lonlat, val_frac, method, block_deg, seed)
    if len(tr) == 0 or len(va) == 0:
        raise DatasetError(f"{src}: split '{source_split}' ({len(s)} rows) is too small to hold out {val_frac:.0%}")

    def part(idx: np.ndarray) -> SplitData:
        feats = None if s.features is None else np.asarray(s.features[idx])
        probs = {k: s.probs(k)[idx] for k in s.prob_keys}
        return SplitData(s.table.iloc[idx].reset_index(drop=True), feats, probs)

    splits = {name: _copy(ds.split(name)) for name in ds.split_names if name != source_split}
    splits["train"], splits["val"] = part(tr), part(va)
    prov = dict(ds.manifest.get("provenance") or {})
    prov["resplit"] = {"from": str(src), "split": source_split, "method": method,
                       "val_frac": val_frac, "block_deg": block_deg, "seed": seed}
    return write_dataset(out, splits, list(ds.classes), prov)


def _copy(s: Split) -> SplitData:
    """A whole split as :class:`SplitData` (features read into memory)."""
    feats = None if s.features is None else np.asarray(s.features)
    return SplitData(s.table, feats, {k: s.probs(k) for k in s.prob_keys})
