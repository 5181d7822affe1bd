"""Seeded, saved data splits.

The stratified label-ratio subset (spec §5), a label subset read from a file (the image
classifier's own labelled rows), and spatial block splits / folds for
geographic-generalisation evaluation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.coords import validate_lonlat
from geocsp.data.subset_file import read_subset, subset_sha256
from geocsp.errors import ConfigError, DatasetError
from geocsp.io import atomic_write_json, atomic_write_npy


def _labels_array(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ConfigError(f"labels must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_ratio(ratio: float) -> float:
    r = float(ratio)
    if not 0.0 < r <= 1.0:
        raise ConfigError(f"label ratio must be in (0, 1], got {ratio}")
    return r


def _rank_within_class(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rank 0..n_c-1 of each row within its class (vectorised).

    Args:
        labels: (M,) int64 class indices, all >= 0.
        rng: the random generator (consumes M uniforms).

    Returns:
        (M,) int64 rank of each row inside its class.
    """
    keys = rng.random(len(labels))
    order = np.lexsort((keys, labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    run = np.zeros(len(labels), dtype=np.int64)
    run[starts[1:]] = 1
    group_start = starts[np.cumsum(run)]
    ranks = np.empty(len(labels), dtype=np.int64)
    ranks[order] = np.arange(len(labels)) - group_start
    return ranks


def take_per_class(labels: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw, without replacement, ``k[c]`` rows of every class c.

    Args:
        labels: (N,) int64 class indices; rows with a negative label are never drawn.
        k: (max_label + 1,) how many rows to draw per class (clipped to the class size).
        rng: the random generator.

    Returns:
        Sorted int64 indices into ``labels``.
    """
    rows = np.flatnonzero(labels >= 0)
    lab = labels[rows]
    if lab.size == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = _rank_within_class(lab, rng)
    return rows[ranks < k[lab]].astype(np.int64)


def stratified_subset(labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """The stratified label-ratio subset of spec §5 ("stratified-fix").

    For each class with n_c labelled rows, draw k_c = max(1, round_half_even(ratio * n_c))
    rows without replacement. Rows labelled -1 (unlabelled) are ignored.

    Args:
        labels: (N,) int class indices, -1 = unlabelled.
        ratio: label ratio λ in (0, 1].
        seed: seed of the numpy Generator.

    Returns:
        Sorted int64 row indices.

    Raises:
        ConfigError: on a ratio outside (0, 1] or non-integer labels.
    """
    lab = _labels_array(labels)
    ratio = _check_ratio(ratio)
    counts = np.bincount(lab[lab >= 0], minlength=1)
    k = np.maximum(1, np.round(ratio * counts)).astype(np.int64)
    return take_per_class(lab, k, np.random.default_rng(seed))


SUBSET_DIR = "subset"
"""Where a run directory keeps its saved label subsets."""


def _fingerprint(labels: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def subset_path(run_dir: str | Path, ratio: float, seed: int) -> Path:
    """``run_dir/subset/ratio{λ:.3f}_seed{seed}.npy``."""
    return Path(run_dir) / SUBSET_DIR / f"ratio{_check_ratio(ratio):.3f}_seed{int(seed)}.npy"


def load_or_make_subset(run_dir: str | Path, labels: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Reuse the saved stratified subset of a run, or draw and save it.

    The indices go to ``subset/ratio{λ:.3f}_seed{seed}.npy`` (``np.save``, no pickle) with a
    ``.json`` sidecar fingerprinting the labels, so a rerun on the same data reuses them and
    a rerun on different data is refused. The pair is one artifact: the sidecar is removed
    before the indices are (re)written and written last (each file atomically), so a pair
    left incomplete or unreadable by a killed run is simply drawn again -- deterministically,
    from ``labels``, ``ratio`` and ``seed``.

    Args:
        run_dir: the run directory.
        labels: (N,) int class indices, -1 = unlabelled.
        ratio: label ratio λ in (0, 1].
        seed: seed used when drawing.

    Returns:
        Sorted int64 row indices.

    Raises:
        DatasetError: when the saved subset belongs to other labels.
    """
    lab = _labels_array(labels)
    path = subset_path(run_dir, ratio, seed)
    meta_path = path.with_suffix(".json")
    fp = _fingerprint(lab)
    saved = _read_saved_subset(path, meta_path)
    if saved is not None:
        idx, meta = saved
        if meta.get("labels_sha1") != fp or (idx.size and (idx.max() >= len(lab) or idx.min() < 0)):
            raise DatasetError(
                f"{path}: saved subset was drawn from different labels (N={meta.get('n')}, now {len(lab)}); "
                "use a new run directory or delete the file"
            )
        return idx.astype(np.int64, copy=False)
    idx = stratified_subset(lab, ratio, seed)
    meta_path.unlink(missing_ok=True)  # from here until the sidecar is back, the pair is incomplete
    atomic_write_npy(path, idx, fault="subset")
    atomic_write_json(meta_path, {"ratio": float(ratio), "seed": int(seed), "n": len(lab), "labels_sha1": fp},
                      fault="subset")
    return idx


def _read_saved_subset(path: Path, meta_path: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The saved (indices, sidecar) pair, or None when either is missing or unreadable."""
    try:
        idx = np.load(path, allow_pickle=False)
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(meta, dict) or not isinstance(idx, np.ndarray) or idx.ndim != 1 or (
            idx.size and idx.dtype.kind not in "iu"):
        return None
    return idx, meta


# ---------------------------------------------------------------- a subset from a file

SUBSET_FILE = "file"
"""Stem of the saved copy of a ``--subset FILE`` in ``run_dir/subset/`` (``file.npy`` + ``file.json``)."""


def _saved_file_subset(run_dir: Path, spec: str | Path, labels: np.ndarray) -> np.ndarray:
    """Read ``spec`` and save it into the run (``subset/file.npy`` + sidecar), or check the saved one."""
    idx = read_subset(spec, labels)
    path = run_dir / SUBSET_DIR / f"{SUBSET_FILE}.npy"
    meta = {"source": str(spec), "sha256": subset_sha256(spec), "n": len(labels),
            "labels_sha1": _fingerprint(labels), "rows": int(idx.size)}
    saved = _read_saved_subset(path, path.with_suffix(".json"))
    if saved is not None:
        if saved[1].get("sha256") != meta["sha256"] or saved[1].get("labels_sha1") != meta["labels_sha1"]:
            raise DatasetError(f"{path}: the run's saved subset came from another file or other labels "
                               f"({saved[1].get('source')}); use a new run directory or --overwrite")
        return idx
    path.with_suffix(".json").unlink(missing_ok=True)
    atomic_write_npy(path, idx, fault="subset")
    atomic_write_json(path.with_suffix(".json"), meta, fault="subset")
    return idx


def usable_rows(labels: np.ndarray | None, has_location: np.ndarray) -> np.ndarray:
    """The train rows a prior can be fine-tuned on: labelled (>= 0) and with a location.

    :func:`training_subset` returns positions among these rows.

    Args:
        labels: (N,) int class indices, -1 = unlabelled (None: no labels).
        has_location: (N,) bool.

    Returns:
        Sorted int64 row indices.
    """
    lab = _labels_array(np.full(len(has_location), -1) if labels is None else labels)
    return np.flatnonzero((lab >= 0) & np.asarray(has_location, dtype=bool))


def training_subset(run_dir: str | Path, labels: np.ndarray | None, has_location: np.ndarray, ratio: float,
                    seed: int, subset: str | Path | None = None) -> np.ndarray:
    """The labelled rows a prior is fine-tuned on, as positions among the usable train rows.

    Usable rows are those with a label and a location (in train-split order). Without
    ``subset`` this is the saved stratified λ-subset (:func:`load_or_make_subset`); with it,
    the rows of :func:`read_subset` (saved into ``run_dir/subset/``) that have a location --
    a labelled row without one cannot train a location prior.

    Args:
        run_dir: the run directory.
        labels: (N,) int class indices of the train split, -1 = unlabelled (None: none).
        has_location: (N,) bool, False where the location is missing.
        ratio: label ratio λ in (0, 1] of the stratified subset.
        seed: seed of the stratified subset.
        subset: ``FILE[:COLUMN]`` (see :func:`read_subset`), or None.

    Returns:
        Sorted int64 positions among the usable rows.

    Raises:
        DatasetError: on an invalid subset file or a saved subset of other data.
    """
    lab = _labels_array(np.full(len(has_location), -1) if labels is None else labels)
    usable = usable_rows(lab, has_location)
    if subset is None:
        return load_or_make_subset(run_dir, lab[usable], ratio, seed)
    idx = _saved_file_subset(Path(run_dir), subset, lab)
    return np.searchsorted(usable, idx[has_location[idx]]).astype(np.int64)


# ---------------------------------------------------------------- spatial blocks


def _cell_schedule(lonlat: np.ndarray, block_deg: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Put grid cells in a seeded random order and give each row its cell's position.

    Args:
        lonlat: (N, 2) longitude, latitude in degrees; NaN rows = missing.
        block_deg: cell size in degrees.
        seed: seed of the cell order.

    Returns:
        rows: int64 indices of rows with a location.
        start_frac: (len(rows),) fraction of located rows that come before the row's
            cell in the random cell order (in [0, 1)).
    """
    if not 0 < block_deg <= 180:
        raise ConfigError(f"block_deg must be in (0, 180], got {block_deg}")
    ll = validate_lonlat(lonlat, allow_missing=True, source="spatial split lonlat")
    rows = np.flatnonzero(~np.isnan(ll).any(axis=1))
    n_lon = int(np.ceil(360.0 / block_deg))
    n_lat = int(np.ceil(180.0 / block_deg))
    ci = np.clip(((ll[rows, 0] + 180.0) // block_deg).astype(np.int64), 0, n_lon - 1)
    cj = np.clip(((ll[rows, 1] + 90.0) // block_deg).astype(np.int64), 0, n_lat - 1)
    cells, inverse, counts = np.unique(ci * n_lat + cj, return_inverse=True, return_counts=True)
    perm = np.random.default_rng(seed).permutation(len(cells))
    before = np.empty(len(cells), dtype=np.int64)
    before[perm] = np.cumsum(counts[perm]) - counts[perm]
    return rows.astype(np.int64), before[inverse] / max(1, len(rows))


def spatial_block_split(
    lonlat: np.ndarray, block_deg: float = 10.0, holdout_frac: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole lon/lat grid cells: about ``holdout_frac`` of the located rows.

    Cells are taken in a seeded random order until at least ``holdout_frac`` of the rows
    with a location are held out. Rows with a missing location go to neither side.

    Args:
        lonlat: (N, 2) longitude, latitude in degrees; NaN rows = missing.
        block_deg: cell size in degrees (cells are equal-angle, smaller near the poles).
        holdout_frac: target fraction of located rows in the test side, in (0, 1).
        seed: seed of the cell order.

    Returns:
        (train_idx, test_idx): sorted int64 row indices; no cell is on both sides.

    Raises:
        ConfigError: on a block size or fraction out of range.
        CoordinateError: on invalid coordinates.
    """
    if not 0.0 < holdout_frac < 1.0:
        raise ConfigError(f"holdout_frac must be in (0, 1), got {holdout_frac}")
    rows, start = _cell_schedule(lonlat, block_deg, seed)
    test = start < holdout_frac
    return rows[~test], rows[test]


def spatial_block_folds(
    lonlat: np.ndarray, block_deg: float = 10.0, k: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """k-fold spatial cross-validation: every grid cell is in exactly one test fold.

    Cells in a seeded random order are cut into k runs of about equal row counts.

    Args:
        lonlat: (N, 2) longitude, latitude in degrees; NaN rows = missing (in no fold).
        block_deg: cell size in degrees.
        k: number of folds (>= 2).
        seed: seed of the cell order.

    Returns:
        k pairs (train_idx, test_idx) of sorted int64 row indices.

    Raises:
        ConfigError: on k < 2 or a block size out of range.
        CoordinateError: on invalid coordinates.
    """
    if int(k) < 2:
        raise ConfigError(f"k must be >= 2 for k-fold cross-validation, got {k}")
    rows, start = _cell_schedule(lonlat, block_deg, seed)
    fold = np.minimum((start * k).astype(np.int64), k - 1)
    return [(rows[fold != f], rows[fold == f]) for f in range(int(k))]
