"""The geocsp dataset directory: load and validate (docs/design.md, "data/").

Writing is in :mod:`geocsp.data.writer` (re-exported here); the format's names, version
and array files are in :mod:`geocsp.data.format`, its tables in :mod:`geocsp.data.tables`.

A dataset directory holds one table per split (Parquet or CSV; ``lon``, ``lat`` in degrees,
optional ``label`` class name, ``date``, ``image`` and any extra columns), optional row-aligned
image features ``(N, D)`` (memory-mapped on load) and image-classifier probabilities ``(N, Q)``
(dense ``.npy`` or scipy-sparse ``.npz``), plus ``manifest.json`` naming the classes in order.
Validation is vectorised (no per-row Python) so that millions of rows load in seconds.
Every problem is one :class:`~geocsp.errors.DatasetError` line ``file:row:column: message``
(rows count from 0, the header excluded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geocsp.data.format import (
    DEFAULT_PROBS,
    FORMAT,
    MANIFEST,
    VERSION,
    Problems,
    check_features,
    check_probs,
    check_probs_key,
    load_npy,
    load_probs,
)
from geocsp.data.labels import check_classes, encode_labels
from geocsp.data.tables import err, read_raw_table, table_lonlat
from geocsp.data.writer import SplitData, write_dataset
from geocsp.errors import DatasetError, MissingFileError

__all__ = [
    "DEFAULT_PROBS",
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "GeoDataset",
    "Split",
    "SplitData",
    "load_dataset",
    "load_split",
    "read_manifest",
    "write_dataset",
]


class Split:
    """One loaded split of a :class:`GeoDataset`.

    Args:
        name: split name.
        table: the split table as read.
        lonlat: (N, 2) float64 longitude, latitude in degrees; NaN rows are missing.
        labels: (N,) int64 class indices (-1 = unlabelled) or None without a label column.
        features: (N, D) memory-mapped features or None.
        probs: probability sets by key, (N, Q) memmap or scipy sparse.
    """

    def __init__(
        self,
        name: str,
        table: pd.DataFrame,
        lonlat: np.ndarray,
        labels: np.ndarray | None,
        features: np.ndarray | None,
        probs: dict[str, Any],
    ) -> None:
        self.name = name
        self.table = table
        self.lonlat = lonlat
        self.labels = labels
        self.features = features
        self._probs = probs
        self.has_location: np.ndarray = ~np.isnan(lonlat).any(axis=1)
        """(N,) bool, False where the location is missing."""

    @property
    def prob_keys(self) -> list[str]:
        """Keys of the stored probability sets."""
        return list(self._probs)

    def probs(self, key: str = DEFAULT_PROBS, *, dense: bool = True) -> Any:
        """Image-classifier probabilities.

        Args:
            key: which probability set (``"default"``, ``"ratio0.050"``...).
            dense: return a dense float32 array; False returns the stored object
                (memmap or scipy sparse) without copying.

        Returns:
            (N, Q) probabilities.

        Raises:
            DatasetError: when the split has no such probability set.
        """
        if key not in self._probs:
            have = ", ".join(self._probs) or "none"
            raise DatasetError(f"split '{self.name}' has no probabilities '{key}'; available: {have}")
        p = self._probs[key]
        if not dense:
            return p
        if hasattr(p, "toarray"):
            return p.toarray().astype(np.float32, copy=False)
        return np.asarray(p, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.lonlat)

    def __repr__(self) -> str:
        d = None if self.features is None else self.features.shape[1]
        return f"Split({self.name!r}, rows={len(self)}, feature_dim={d}, probs={self.prob_keys})"


class GeoDataset:
    """A loaded geocsp dataset directory (see :func:`load_dataset`).

    Args:
        root: the dataset directory.
        manifest: the parsed ``manifest.json``.
        splits: loaded splits by name.
    """

    def __init__(self, root: Path, manifest: dict[str, Any], splits: dict[str, Split]) -> None:
        self.root = root
        self.manifest = manifest
        self.classes: list[str] = list(manifest["classes"])
        self.feature_dim: int | None = manifest.get("feature_dim")
        self._splits = splits

    @property
    def split_names(self) -> list[str]:
        """Split names in manifest order."""
        return list(self._splits)

    def split(self, name: str) -> Split:
        """The split ``name``.

        Raises:
            DatasetError: when there is no such split.
        """
        if name not in self._splits:
            raise DatasetError(
                f"{self.root}: no split '{name}'; available: {', '.join(self._splits)}"
            )
        return self._splits[name]

    def __contains__(self, name: object) -> bool:
        return name in self._splits

    def __repr__(self) -> str:
        return f"GeoDataset({str(self.root)!r}, classes={len(self.classes)}, splits={self.split_names})"


# ---------------------------------------------------------------- loading


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and structurally validate ``root/manifest.json``.

    Raises:
        MissingFileError: when the directory or the manifest does not exist.
        DatasetError: on invalid JSON or a malformed manifest.
    """
    path = root / MANIFEST
    if not root.is_dir():
        raise MissingFileError(f"{root}: dataset directory not found")
    if not path.is_file():
        raise MissingFileError(f"{path}: not found; is {root} a geocsp dataset directory?")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise err(path, f"invalid JSON ({e.msg})", row=e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise err(path, f"unreadable ({type(e).__name__})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise err(path, f"not a geocsp dataset manifest (expected \"format\": \"{FORMAT}\")")
    if m.get("version") != VERSION:
        raise err(path, f"unsupported version {m.get('version')!r}; this geocsp reads {VERSION}")
    check_classes(m.get("classes"), str(path))
    splits = m.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise err(path, "expected a non-empty \"splits\" object", column="splits")
    for name, entry in splits.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("table"), str):
            raise err(path, f"split '{name}' needs a \"table\" file name", column="splits")
        if not isinstance(entry.get("probs") or {}, dict):
            raise err(path, f"split '{name}': \"probs\" must map probability keys to file names, "
                            f"got {type(entry['probs']).__name__}", column="splits")
        for f in [entry["table"], entry.get("features"), *(entry.get("probs") or {}).values()]:
            if f is not None and (not isinstance(f, str) or Path(f).name != f):
                raise err(path, f"split '{name}': {f!r} must be a file name inside the dataset")
    fd = m.get("feature_dim")
    if fd is not None and (not isinstance(fd, int) or fd <= 0):
        raise err(path, f"feature_dim must be a positive integer or null, got {fd!r}")
    return m


def load_split(
    root: Path, name: str, entry: dict[str, Any], manifest: dict[str, Any], problems: Problems, *, verify_values: bool
) -> Split | None:
    """Load and validate one split; problems go through ``problems``.

    Returns:
        The split, or None when its table could not be read (collect mode).
    """
    classes = manifest["classes"]
    tpath = root / entry["table"]
    table = None
    with problems.guard():
        table = read_raw_table(tpath)
        if len(table) == 0:
            raise err(tpath, "empty table; a split needs at least one row")
        rows = entry.get("rows")
        if rows is not None and rows != len(table):
            raise err(tpath, f"has {len(table)} rows but the manifest says {rows}")
    if table is None:
        return None
    n = len(table)
    lonlat = np.full((n, 2), np.nan)
    labels = features = None
    probs: dict[str, Any] = {}
    with problems.guard():
        lonlat = table_lonlat(table, str(tpath))
    if "label" in table.columns:
        with problems.guard():
            labels = encode_labels(table["label"], classes, str(tpath))
    if entry.get("features"):
        with problems.guard():
            fpath = root / entry["features"]
            features = load_npy(fpath)
            dim = check_features(features, n, str(fpath), verify_values=verify_values)
            if manifest.get("feature_dim") not in (None, dim):
                raise err(fpath, f"feature dim {dim} differs from the manifest's {manifest['feature_dim']}")
    for key, file in (entry.get("probs") or {}).items():
        with problems.guard():
            check_probs_key(key, f"{root / MANIFEST}: split '{name}'")
            ppath = root / file
            p = load_probs(ppath)
            check_probs(p, n, len(classes), str(ppath), verify_values=verify_values)
            probs[key] = p
    return Split(name, table, lonlat, labels, features, probs)


def load_dataset(path: str | Path, *, verify_values: bool = True) -> GeoDataset:
    """Load a geocsp dataset directory, validating everything.

    Features and dense probabilities are memory-mapped (never read into RAM here, except
    chunk by chunk for the finiteness scan); sparse probabilities are read with
    ``scipy.sparse.load_npz``.

    Args:
        path: the dataset directory.
        verify_values: scan features/probabilities for NaN/inf and out-of-range values
            (one streaming pass); False checks shapes and dtypes only.

    Returns:
        The loaded :class:`GeoDataset`.

    Raises:
        MissingFileError: when the directory, manifest or a listed file is missing.
        DatasetError: on the first problem, as ``file:row:column: message``.
        CoordinateError: on invalid coordinates in a table.
    """
    root = Path(path)
    manifest = read_manifest(root)
    problems = Problems(collect=False)
    splits = {}
    for name, entry in manifest["splits"].items():
        split = load_split(root, name, entry, manifest, problems, verify_values=verify_values)
        assert split is not None  # strict mode raises instead
        splits[name] = split
    return GeoDataset(root, manifest, splits)
