"""Writing a geocsp dataset directory, atomically.

The format is described in :mod:`geocsp.data.dataset`, which loads what this writes; its
names, version and array files are in :mod:`geocsp.data.format`.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geocsp.data.format import (
    DEFAULT_PROBS,
    FORMAT,
    MANIFEST,
    VERSION,
    check_features,
    check_probs,
    check_probs_key,
    feature_dtype,
    save_npy,
    save_probs,
)
from geocsp.data.labels import check_classes, encode_labels
from geocsp.data.tables import err, table_lonlat
from geocsp.errors import DatasetError
from geocsp.io import atomic_dir, is_temporary

__all__ = ["SplitData", "write_dataset"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class SplitData:
    """One split to write: a table plus optional row-aligned arrays.

    Args:
        table: N rows with ``lon``, ``lat`` (degrees; NaN = missing), optional ``label``
            (class name), ``date`` (ISO), ``image`` and extra columns.
        features: (N, D) float image features, or None.
        probs: probability sets by key (``"default"``, ``"ratio0.050"``...), each (N, Q)
            dense array or scipy sparse matrix.
    """

    table: pd.DataFrame
    features: np.ndarray | None = None
    probs: dict[str, Any] = field(default_factory=dict)


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DatasetError(
            f"invalid {what} name {name!r}; use letters, digits, '_', '.', '-' (no path separators)"
        )
    return name


def _prepare_split(
    name: str, sd: SplitData, classes: list[str]
) -> tuple[pd.DataFrame, int | None]:
    """Validate one split for writing; returns (normalised table, feature dim)."""
    source = f"{name} table"
    if not isinstance(sd, SplitData):
        raise DatasetError(f"split '{name}': expected SplitData, got {type(sd).__name__}")
    t = sd.table
    if not isinstance(t, pd.DataFrame) or len(t) == 0:
        raise err(source, "empty table; a split needs at least one row")
    n = len(t)
    t = t.reset_index(drop=True).copy()
    t.columns = [str(c) for c in t.columns]
    lonlat = table_lonlat(t, source)
    t["lon"], t["lat"] = lonlat[:, 0], lonlat[:, 1]
    if "label" in t.columns:
        codes = encode_labels(t["label"], classes, source)
        names = np.asarray(classes, dtype=object)[np.maximum(codes, 0)]
        t["label"] = pd.Series(np.where(codes >= 0, names, None), dtype="string")
    dim = None
    if sd.features is not None:
        dim = check_features(sd.features, n, f"{name} features")
    for key, p in sd.probs.items():
        check_probs_key(key, f"{name} probs")
        check_probs(p, n, len(classes), f"{name} probs '{key}'")
    return t, dim


def check_dataset_target(out: Path) -> None:
    """Refuse an output that is not absent, empty, or a geocsp dataset of only its own files.

    Called by :func:`write_dataset`, and before any work by writers that compute first.

    Raises:
        DatasetError: a file, a folder that is not a geocsp dataset, or one holding other files.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory; choose another output path")
    if not any(out.iterdir()):
        return
    if _manifest_format(out / MANIFEST) != FORMAT:
        raise DatasetError(
            f"{out}: exists and is not a geocsp dataset; refusing to overwrite it "
            "(choose another output directory or remove it)"
        )
    ours = _dataset_entries(out)
    other = sorted(p.name for p in out.iterdir() if p.name not in ours and not is_temporary(p.name))
    if other:  # the folder is replaced as a whole: never take a user's own files with it
        raise DatasetError(f"{out}: holds {other[0]!r}, which is not part of the geocsp dataset; refusing to "
                           "replace the folder (move it out or choose another output directory)")


DATASET_EXTRAS = ("truth.npz", "extract_report.json")
"""Files geocsp writes beside a dataset's manifest without listing them (GeoWorld's truth, the
feature extraction report): replaced with the dataset."""


def _dataset_entries(out: Path) -> set[str]:
    """The top-level names the dataset at ``out`` consists of: its manifest, the files it lists, the extras."""
    names = {MANIFEST, *DATASET_EXTRAS}
    with contextlib.suppress(OSError, ValueError):
        stack = [json.loads((out / MANIFEST).read_text()).get("splits")]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and item:
                names.add(Path(item).parts[0])
    return names


def _manifest_format(path: Path) -> Any:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        return data.get("format") if isinstance(data, dict) else None
    return None


def write_dataset(
    out_dir: str | Path,
    splits: dict[str, SplitData],
    classes: list[str],
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Validate ``splits`` and write them as a geocsp dataset directory, atomically.

    Everything is validated before anything is written; the files go to a temporary
    directory beside ``out_dir`` that is fsynced and renamed into place
    (:func:`geocsp.io.atomic_dir`), so a failure or a kill leaves no partial dataset. An
    existing geocsp dataset (or empty directory) at ``out_dir`` is replaced as a whole.

    Args:
        out_dir: target directory.
        splits: split name -> :class:`SplitData`.
        classes: class names in index order (probability columns follow this order).
        provenance: free-form JSON-serialisable description of where the data came from.

    Returns:
        The dataset directory.

    Raises:
        DatasetError: on any invalid input (message names split, row and column), or when
            ``out_dir`` exists and is not a geocsp dataset.
        CoordinateError: on invalid coordinates.
    """
    out = Path(out_dir)
    classes = check_classes(classes, "classes")
    if not splits:
        raise DatasetError("write_dataset: no splits given; pass at least one SplitData")
    prepared = {_check_name(k, "split"): _prepare_split(k, sd, classes) for k, sd in splits.items()}
    dims = {d for _, d in prepared.values() if d is not None}
    if len(dims) > 1:
        raise DatasetError(f"features of different splits have different dims {sorted(dims)}")
    check_dataset_target(out)
    with atomic_dir(out) as tmp:
        entries = {
            name: _write_split(tmp, name, table, splits[name]) for name, (table, _) in prepared.items()
        }
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "classes": classes,
            "feature_dim": dims.pop() if dims else None,
            "splits": entries,
            "provenance": dict(provenance or {}),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def _write_split(root: Path, name: str, table: pd.DataFrame, sd: SplitData) -> dict[str, Any]:
    table_file = f"{name}.parquet"
    try:
        table.to_parquet(root / table_file, index=False)
    except (ValueError, TypeError, ImportError) as e:  # pyarrow type errors are ValueErrors
        raise err(f"{name} table", f"cannot be written as Parquet ({type(e).__name__}: {e})") from None
    feat_file = None
    if sd.features is not None:
        feat_file = f"{name}.features.npy"
        save_npy(root / feat_file, sd.features, feature_dtype(sd.features))
    probs = {}
    for key, p in sd.probs.items():
        stem = f"{name}.probs" if key == DEFAULT_PROBS else f"{name}.probs.{key}"
        probs[key] = save_probs(root, stem, p)
    return {"rows": len(table), "table": table_file, "features": feat_file, "probs": probs}

