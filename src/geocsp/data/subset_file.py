"""A label subset given as a file: the rows the image classifier was trained on.

``finetune --subset FILE[:COLUMN]`` (docs/dataset.md): FILE is a 1-D integer ``.npy`` or a
text/CSV file of row indices into the train split, or -- with ``:COLUMN`` -- a CSV/Parquet
table row-aligned with the train split whose 0/1 column marks the subset. Saving the subset
into a run directory is :func:`geocsp.data.splits.training_subset`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from geocsp.data.tables import err, numeric_cells, open_table, require_column, require_file


def parse_subset_spec(spec: str | Path) -> tuple[Path, str | None]:
    """Split ``FILE[:COLUMN]`` into the file and the 0/1 column (None = a list of row indices).

    Args:
        spec: ``idx.txt``, ``idx.npy``, ``rows.csv`` or ``rows.csv:COLUMN``; a path that
            exists as given is never split.

    Returns:
        (file, column or None).
    """
    text = str(spec)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    path, column = text.rsplit(":", 1)
    return Path(path), column or None


def subset_sha256(spec: str | Path, expected: str | None = None) -> str:
    """The SHA-256 of a subset file (its bytes), checked against a pinned digest.

    Args:
        spec: ``FILE[:COLUMN]``.
        expected: the digest a run recorded, or None.

    Returns:
        The hex digest.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when the file's digest is not ``expected``.
    """
    path, _ = parse_subset_spec(spec)
    require_file(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if expected is not None and digest != expected:
        raise err(path, f"SHA-256 {digest[:12]}... differs from the run's subset_sha256 {expected[:12]}...; "
                        "the subset file changed: use a new run directory or restore the file")
    return digest


def _index_values(path: Path) -> np.ndarray:
    """(M,) int64 row indices of a 1-D integer ``.npy`` or a text/CSV file of one index a line."""
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise err(path, f"unreadable .npy array ({type(e).__name__})") from None
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise err(path, f"expected a 1-D integer array of train row indices, got shape {arr.shape} {arr.dtype}")
        return arr.astype(np.int64)
    try:
        lines = path.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise err(path, f"unreadable text file ({type(e).__name__})") from None
    if lines and not lines[0].strip().lstrip("-").isdigit() and "," not in lines[0]:
        lines = lines[1:]  # a one-word header such as "index"
    out = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        cell = line.strip()
        if "," in cell:
            raise err(path, "several columns; name the 0/1 column to use: --subset FILE:COLUMN", row=i)
        if not cell.lstrip("-").isdigit():
            raise err(path, f"not a row index: {cell!r}; expected one integer per line", row=i)
        out[i] = int(cell)
    return out


def _mask_rows(path: Path, column: str, n_rows: int) -> np.ndarray:
    """Row indices where the 0/1 ``column`` of a table row-aligned with the split is 1."""
    table = open_table(path, sep=None, text_columns=None)
    require_column(table, path, column, "--subset FILE:COLUMN")
    if len(table) != n_rows:
        raise err(path, f"has {len(table)} rows but the train split has {n_rows}; a 0/1 column must be row-aligned")
    raw = table[column]
    values = raw.astype(np.int64).to_numpy() if pd.api.types.is_bool_dtype(raw) else numeric_cells(raw, path, column, "0 or 1")
    bad = np.flatnonzero(~np.isin(values, (0, 1)))
    if bad.size:
        raise err(path, f"value {values[bad[0]]} is not 0 or 1", row=int(bad[0]), column=column)
    return np.flatnonzero(values == 1).astype(np.int64)


def read_subset(spec: str | Path, labels: np.ndarray) -> np.ndarray:
    """The train rows of a label subset given as a file (the image classifier's labelled rows).

    Args:
        spec: ``FILE`` -- a 1-D integer ``.npy`` or a text/CSV file with one row index per
            line (an optional one-word header) -- or ``FILE:COLUMN``, a CSV/Parquet table
            row-aligned with the train split whose 0/1 column marks the subset.
        labels: (N,) int class indices of the train split, -1 = unlabelled.

    Returns:
        Sorted int64 row indices into the train split.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: ``FILE:ROW: ...`` on an unreadable value, an index out of [0, N), a
            duplicate, an unlabelled row or an empty subset.
    """
    lab = np.asarray(labels, dtype=np.int64)
    path, column = parse_subset_spec(spec)
    require_file(path)
    idx = _mask_rows(path, column, len(lab)) if column is not None else _index_values(path)
    bad = np.flatnonzero((idx < 0) | (idx >= len(lab)))
    if bad.size:
        raise err(path, f"row index {idx[bad[0]]} out of range; the train split has {len(lab)} rows "
                        f"(expected 0..{len(lab) - 1})", row=int(bad[0]))
    first = np.unique(idx, return_index=True)[1]
    if len(first) < len(idx):
        dup = int(np.setdiff1d(np.arange(len(idx)), first)[0])
        raise err(path, f"row index {idx[dup]} appears more than once; expected unique indices", row=dup)
    unlabelled = np.flatnonzero(lab[idx] < 0)
    if unlabelled.size:
        raise err(path, f"train row {idx[unlabelled[0]]} is unlabelled; a label subset holds labelled rows only",
                  row=int(unlabelled[0]), column=column)
    if idx.size == 0:
        raise err(path, "selects no row; expected at least one labelled train row")
    return np.sort(idx)


def pin_subset(spec: str | Path, labels: np.ndarray | None, expected: str | None = None) -> str:
    """Validate a subset file against the train labels and return its SHA-256 (before a run starts).

    Args:
        spec: ``FILE[:COLUMN]`` (see :func:`read_subset`).
        labels: (N,) int class indices of the train split, -1 = unlabelled (None: none).
        expected: the digest a run recorded, or None.

    Returns:
        The hex digest.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: on an invalid subset or a digest other than ``expected``.
    """
    path, _ = parse_subset_spec(spec)
    read_subset(spec, np.full(0, -1) if labels is None else labels)
    return subset_sha256(path, expected)
