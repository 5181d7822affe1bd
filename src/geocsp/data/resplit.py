"""Carve a held-out split out of another (``geocsp data split``).

The original use derives ``val`` from a dataset that has only ``train`` (or one ``all``
split). The same command holds out a ``calib`` split from ``val`` for the calibrated
fusion (docs/protocol.md): ``--from val --hold-out calib --method stratified``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geocsp.data.dataset import Split, SplitData, load_dataset, write_dataset
from geocsp.data.splits import spatial_block_split, take_per_class
from geocsp.data.tables import refuse_existing
from geocsp.errors import ConfigError, DatasetError


def split_indices(lonlat: np.ndarray, val_frac: float, method: str, block_deg: float,
                  seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(kept_idx, held_idx) of a random, class-stratified or spatial-block hold-out.

    ``stratified`` holds out round(val_frac · n_c) rows of every class c with n_c labelled
    rows, at least 1 when n_c >= 2 and never the class's last row (every class keeps a row on
    both sides when it can); unlabelled rows (label -1) are held out at random at the same
    fraction. Rows with a missing location stay in the kept part for ``spatial`` (they belong
    to no block) and are split like any row otherwise.

    Args:
        lonlat: (N, 2) lon/lat in degrees (NaN = no location).
        val_frac: fraction held out, in (0, 1).
        method: ``random``, ``stratified`` or ``spatial``.
        block_deg: block size in degrees for ``spatial``.
        seed: the split's seed.
        labels: (N,) int class indices, -1 = unlabelled (``stratified`` only).

    Returns:
        Sorted int64 (kept, held-out) row indices.

    Raises:
        ConfigError: on an unknown method or a fraction outside (0, 1).
        DatasetError: ``stratified`` on rows without labels.
    """
    if not 0.0 < val_frac < 1.0:
        raise ConfigError(f"--val-frac must be in (0, 1), got {val_frac}")
    n = len(lonlat)
    if method == "random":
        perm = np.random.default_rng(seed).permutation(n)
        k = max(1, round(val_frac * n))
        return np.sort(perm[k:]), np.sort(perm[:k])
    if method == "stratified":
        if labels is None or not (np.asarray(labels) >= 0).any():
            raise DatasetError("--method stratified needs labelled rows (a label column)")
        lab = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(lab[lab >= 0])
        per_class = np.clip(np.round(val_frac * counts), np.minimum(counts - 1, 1), np.maximum(counts - 1, 0))
        rng = np.random.default_rng(seed)
        held = take_per_class(lab, per_class.astype(np.int64), rng)
        unl = np.flatnonzero(lab < 0)
        held = np.sort(np.r_[held, rng.permutation(unl)[:round(val_frac * len(unl))]]).astype(np.int64)
        return np.setdiff1d(np.arange(n), held), held
    if method == "spatial":
        train, val = spatial_block_split(lonlat, block_deg=block_deg, holdout_frac=val_frac, seed=seed)
        missing = np.flatnonzero(np.isnan(lonlat).all(axis=1))
        return np.sort(np.concatenate([train, missing])), val
    raise ConfigError(f"unknown split method '{method}'; expected random, stratified or spatial")


def split_dataset(src: str | Path, out: str | Path, *, source_split: str = "train",
                  val_frac: float = 0.2, method: str = "random", block_deg: float = 10.0,
                  seed: int = 0, overwrite: bool = False, hold_out: str = "val") -> Path:
    """Write a copy of dataset ``src`` whose ``source_split`` is divided in two.

    The held-out rows become split ``hold_out``; the rest is ``train`` when ``hold_out`` is
    ``val`` (deriving a validation split, the original use), else keeps ``source_split``'s
    name (e.g. ``--from val --hold-out calib``: val keeps 1 − val_frac of its rows). Other
    splits are copied unchanged; a split already called ``hold_out`` is refused. Features
    and probabilities follow their rows. The provenance records what was done.

    Args:
        src: the dataset directory.
        out: the new dataset directory (an existing one is refused unless ``overwrite``).
        source_split: the split to divide.
        val_frac: fraction of its rows held out as ``val``.
        method: ``random`` rows, ``stratified`` per class, or ``spatial`` lon/lat blocks.
        block_deg: block size in degrees for ``spatial``.
        seed: the split's seed.
        overwrite: replace an existing dataset at ``out``.
        hold_out: the name of the held-out split.

    Returns:
        The new dataset directory.

    Raises:
        DatasetError: when ``source_split`` is missing or ``hold_out`` already exists.
        ConfigError: on an existing ``out`` without ``overwrite``.
    """
    refuse_existing(out, overwrite)
    ds = load_dataset(src)
    if source_split not in ds.split_names:
        raise DatasetError(f"{src}: no split '{source_split}' (have {', '.join(ds.split_names)})")
    if hold_out in ds.split_names:
        raise DatasetError(f"{src}: already has a '{hold_out}' split")
    kept = "train" if hold_out == "val" else source_split
    if kept == hold_out:
        raise ConfigError(f"--hold-out: expected a name other than '{kept}'")
    s = ds.split(source_split)
    tr, va = split_indices(s.lonlat, val_frac, method, block_deg, seed, labels=s.labels if method == "stratified" else None)
    if len(tr) == 0 or len(va) == 0:
        why = (f"; with --method spatial all its rows may lie in one {block_deg:g}° block: pass a smaller "
               f"--block-deg or --method random" if method == "spatial" else "")
        raise DatasetError(f"{src}: split '{source_split}' ({len(s)} rows) is too small to hold out "
                           f"{val_frac:.0%}{why}")

    def part(idx: np.ndarray) -> SplitData:
        feats = None if s.features is None else np.asarray(s.features[idx])
        probs = {k: s.probs(k)[idx] for k in s.prob_keys}
        return SplitData(s.table.iloc[idx].reset_index(drop=True), feats, probs)

    splits = {name: _copy(ds.split(name)) for name in ds.split_names if name != source_split}
    splits[kept], splits[hold_out] = part(tr), part(va)
    prov = dict(ds.manifest.get("provenance") or {})
    prov["resplit"] = {"from": str(src), "split": source_split, "hold_out": hold_out, "method": method,
                       "val_frac": val_frac, "block_deg": block_deg, "seed": seed}
    return write_dataset(out, splits, list(ds.classes), prov)


def _copy(s: Split) -> SplitData:
    """A whole split as :class:`SplitData` (features read into memory)."""
    feats = None if s.features is None else np.asarray(s.features)
    return SplitData(s.table, feats, {k: s.probs(k) for k in s.prob_keys})
