"""Image-classifier probability sets: read a user's file, add one to an existing dataset.

A split's probability sets are keyed ``default`` (the classifier trained on all labels) or
``ratio{λ:.3f}`` (:func:`geocsp.data.format.check_probs_key`; docs/dataset.md). Given files are
row-aligned ``(N, Q)`` arrays in the dataset's class order, finite, in [0, 1], each row summing
to 1 within 1e-3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from geocsp.data.dataset import load_dataset
from geocsp.data.format import (
    DEFAULT_PROBS,
    MANIFEST,
    check_prob_sums,
    check_probs,
    check_probs_key,
    load_probs,
    save_npy,
)
from geocsp.data.tables import err
from geocsp.errors import ConfigError
from geocsp.io import atomic_path, atomic_write_json


def read_probs_file(path: str | Path, rows: int, num_classes: int) -> Any:
    """Load and validate a user's probability file (``.npy`` dense or ``.npz`` scipy sparse).

    Args:
        path: the file.
        rows: the number of rows N it must have.
        num_classes: the number of classes Q.

    Returns:
        (N, Q) memmap or scipy CSR matrix.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: on a wrong shape, a value that is not finite or outside [0, 1], or a
            row that does not sum to 1.
    """
    if num_classes == 0:
        raise err(path, "probabilities need the class list; give --label-col or --classes")
    p = load_probs(path)
    check_probs(p, rows, num_classes, str(path))
    check_prob_sums(p, str(path))
    return p


def probs_file_name(split: str, key: str, sparse: bool) -> str:
    """The file name a dataset stores a probability set under (``val.probs.ratio0.050.npy``).

    Args:
        split: the split name.
        key: the probability key.
        sparse: a scipy-sparse (``.npz``) rather than a dense (``.npy``) set.

    Returns:
        The file name.
    """
    stem = f"{split}.probs" if key == DEFAULT_PROBS else f"{split}.probs.{key}"
    return f"{stem}.npz" if sparse else f"{stem}.npy"


def add_probs(dataset: str | Path, split: str, key: str, probs_file: str | Path, *,
              overwrite: bool = False) -> Path:
    """Add one probability set to a split of an existing dataset, atomically.

    The array is validated first, written beside the manifest under a temporary name and
    renamed into place, and the manifest is rewritten atomically last: a failure or a kill
    leaves the dataset as it was (at most an unreferenced file that the next call replaces).

    Args:
        dataset: the dataset directory.
        split: the split the probabilities belong to.
        key: ``default`` or ``ratio{λ:.3f}`` with λ in (0, 1).
        probs_file: (N, Q) ``.npy`` / ``.npz`` row-aligned with the split, in the class order.
        overwrite: replace a set already stored under ``key``.

    Returns:
        The path of the written file.

    Raises:
        MissingFileError: when the dataset or the file does not exist.
        DatasetError: on an invalid key, split or array.
        ConfigError: when ``key`` is stored and ``overwrite`` is False.
    """
    ds = load_dataset(dataset, verify_values=False)
    target = ds.split(split)
    check_probs_key(key, "--key")
    if key in target.prob_keys and not overwrite:
        raise ConfigError(f"{ds.root}: split '{split}' already has probabilities '{key}'; "
                          "pass --overwrite to replace them")
    p = read_probs_file(probs_file, len(target), len(ds.classes))
    sparse = scipy.sparse.issparse(p)
    name = probs_file_name(split, key, sparse)
    with atomic_path(ds.root / name) as tmp:
        if sparse:
            with open(tmp, "wb") as f:
                scipy.sparse.save_npz(f, scipy.sparse.csr_matrix(p, dtype=np.float32))
        else:
            save_npy(tmp, p, np.dtype(np.float32))
    manifest = dict(ds.manifest)
    entry = manifest["splits"][split]
    old = (entry.get("probs") or {}).get(key)
    entry["probs"] = {**(entry.get("probs") or {}), key: name}
    atomic_write_json(ds.root / MANIFEST, manifest)
    if old is not None and old != name:
        (ds.root / old).unlink(missing_ok=True)
    return ds.root / name
