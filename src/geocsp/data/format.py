"""The on-disk dataset format: its names and version, and its array files.

Features are ``(N, D)`` float16/float32 ``.npy`` files, memory-mapped on load; probabilities
are ``(N, Q)`` dense float32 ``.npy`` or scipy-sparse CSR ``.npz`` files. Large arrays are
validated and written in row chunks of about 64 MiB, so they need not fit in RAM. No pickle
anywhere. :class:`Problems` collects the format's errors when a check keeps going.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from geocsp.data.tables import err, require_file
from geocsp.errors import GeocspError

FORMAT = "geocsp-dataset"
"""The ``format`` field of ``manifest.json``."""

VERSION = 1
"""The format version this geocsp reads and writes."""

MANIFEST = "manifest.json"
"""The manifest's file name inside a dataset directory."""

DEFAULT_PROBS = "default"
"""Key of the probability set of the classifier trained on all labels (λ = 1)."""

PROBS_KEY_FORM = "'default' (λ = 1) or 'ratio{λ:.3f}' with λ in (0, 1), e.g. 'ratio0.050'"
"""The one documented form of a probability-set key (docs/dataset.md)."""

_RATIO_KEY_RE = re.compile(r"^ratio([0-9]*\.?[0-9]*)$")

PROB_TOLERANCE = 1e-3
"""Probabilities may exceed 1 by this much (float16 rounding)."""

_CHUNK_BYTES = 64 << 20


class Problems:
    """Collects DatasetErrors (``collect=True``) or lets the first one propagate.

    Args:
        collect: record problems and keep going instead of raising.
    """

    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.items: list[str] = []

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Run a block; a GeocspError inside is recorded (collect mode) or re-raised.

        Yields:
            Nothing; the guarded block runs.
        """
        try:
            yield
        except GeocspError as e:
            if not self.collect:
                raise
            self.items.append(str(e))


def ratio_probs_key(ratio: float | None) -> str:
    """The probability-set key of the image classifier trained on a label ratio λ.

    Args:
        ratio: λ in (0, 1]; None or 1 means all labels.

    Returns:
        ``"default"`` for λ = 1 (or None, or λ that rounds to 1.000), else ``f"ratio{λ:.3f}"``
        (``0.05 -> "ratio0.050"``).
    """
    key = DEFAULT_PROBS if ratio is None else f"ratio{min(float(ratio), 1.0):.3f}"
    return DEFAULT_PROBS if key == "ratio1.000" else key


def _canonical_probs_key(key: str) -> str | None:
    """The well-formed key a near-miss such as ``ratio0.05`` or ``ratio1`` stands for, or None."""
    m = _RATIO_KEY_RE.match(key.strip().lower())
    if m is None:
        return None
    try:
        ratio = float(m.group(1))
    except ValueError:
        return None
    return ratio_probs_key(ratio) if 0.0 < ratio <= 1.0 and ratio_probs_key(ratio) != "ratio0.000" else None


def check_probs_key(key: Any, source: str) -> str:
    """Refuse a probability-set key that is not ``default`` or ``ratio{λ:.3f}``, λ in (0, 1).

    Args:
        key: the key as stored or given.
        source: file or split named first in the message.

    Returns:
        ``key``, unchanged.

    Raises:
        DatasetError: ``val probs: probability key 'ratio0.05' must be 'default' (λ = 1) or
            'ratio{λ:.3f}' ...; did you mean 'ratio0.050'?`` (``ratio1.000``: name it ``default``).
    """
    if isinstance(key, str) and (key == DEFAULT_PROBS or key == _canonical_probs_key(key)):
        return key
    fixed = _canonical_probs_key(key) if isinstance(key, str) else None
    if fixed == DEFAULT_PROBS:
        raise err(source, f"probability key {key!r} is the classifier trained on all labels (λ = 1); "
                          f"name it {DEFAULT_PROBS!r}")
    hint = f"; did you mean {fixed!r}?" if fixed else ""
    raise err(source, f"probability key {key!r} must be {PROBS_KEY_FORM}{hint}")


def missing_probs_key(key: str, stored: list[str], split: str) -> str:
    """The message for a probability set a split does not store, with a did-you-mean.

    Args:
        key: the key asked for.
        stored: the split's stored keys.
        split: the split's name.

    Returns:
        ``split 'val' has no probabilities 'ratio0.05' (stored: default, ratio0.050);
        did you mean 'ratio0.050'?``
    """
    fixed = _canonical_probs_key(key)
    close = [fixed] if fixed in stored else difflib.get_close_matches(key, stored, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"split '{split}' has no probabilities {key!r} (stored: {', '.join(stored) or 'none'}){hint}"


def load_npy(path: str | Path) -> np.ndarray:
    """Memory-map an ``.npy`` file read-only (no pickle).

    Args:
        path: the file.

    Returns:
        The read-only memmap.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is truncated, corrupt or holds objects.
    """
    p = Path(path)
    require_file(p)
    try:
        return np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # ValueError (truncated / object), OSError, EOFError
        if "pickled" in str(e) or "Python objects" in str(e):  # geocsp never unpickles: no such advice
            raise err(p, "not a numeric .npy array (an object array, or not .npy at all); expected the output "
                         "of numpy.save on a number array") from None
        raise err(p, f"unreadable .npy array ({type(e).__name__}: {str(e)[:120]})") from None


def load_probs(path: str | Path) -> Any:
    """Load probabilities: ``.npy`` memory-mapped, ``.npz`` via ``scipy.sparse.load_npz``.

    Args:
        path: the file.

    Returns:
        (N, Q) memmap or scipy CSR matrix.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is unreadable or has another extension.
    """
    p = Path(path)
    if p.suffix == ".npy":
        return load_npy(p)
    if p.suffix != ".npz":
        raise err(p, "probabilities must be a dense .npy or a scipy-sparse .npz file")
    require_file(p)
    try:
        return scipy.sparse.load_npz(p).tocsr()
    except Exception as e:  # zipfile/ValueError/KeyError on corrupt or non-sparse archives
        raise err(p, f"not a scipy sparse .npz matrix ({type(e).__name__}: {str(e)[:120]})") from None


def _rows_per_chunk(arr: Any) -> int:
    row_bytes = max(1, int(arr.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))))
    return max(1, _CHUNK_BYTES // row_bytes)


def first_bad(arr: Any, bad: Callable[[np.ndarray], np.ndarray]) -> tuple[int, ...] | None:
    """Index of the first element where ``bad(chunk)`` is True, scanning row chunks.

    Args:
        arr: (N, ...) array or memmap; read ~64 MiB at a time.
        bad: function mapping a chunk to a boolean mask of the same shape.

    Returns:
        The full index of the first bad element, or None.
    """
    step = _rows_per_chunk(arr)
    for start in range(0, arr.shape[0], step):
        mask = bad(np.asarray(arr[start : start + step]))
        if mask.any():
            pos = np.argwhere(mask)[0]
            return (start + int(pos[0]), *(int(x) for x in pos[1:]))
    return None


def check_features(arr: Any, n: int, source: str, *, verify_values: bool = True) -> int:
    """Validate an (N, D) float feature matrix.

    Args:
        arr: (N, D) float16/float32 features.
        n: the number of rows N the table has.
        source: file or split named in messages.
        verify_values: scan for NaN/inf (one streaming pass).

    Returns:
        The feature dim D.

    Raises:
        DatasetError: on a wrong type/shape/row count or a NaN/inf value.
    """
    if not isinstance(arr, np.ndarray):
        raise err(source, f"features must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise err(source, f"features must be (N, D), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise err(source, f"features have {arr.shape[0]} rows but the table has {n}")
    if arr.dtype.kind != "f":
        raise err(source, f"features must be float16/float32, got {arr.dtype}")
    if verify_values:
        pos = first_bad(arr, lambda c: ~np.isfinite(c))
        if pos is not None:
            raise err(source, f"non-finite feature value {arr[pos]}", row=pos[0], column=f"dim {pos[1]}")
    return int(arr.shape[1])


def _bad_prob(c: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(c) | (c < 0) | (c > 1 + PROB_TOLERANCE)


def check_probs(p: Any, n: int, q: int, source: str, *, verify_values: bool = True) -> None:
    """Validate an (N, Q) dense or sparse probability matrix with values in [0, 1].

    Args:
        p: (N, Q) float array, memmap or scipy sparse matrix.
        n: the number of rows N the table has.
        q: the number of classes Q.
        source: file or split named in messages.
        verify_values: scan for NaN/inf and values outside [0, 1] (one streaming pass).

    Raises:
        DatasetError: on a wrong type/shape or a value that is NaN/inf or outside [0, 1].
    """
    sparse = scipy.sparse.issparse(p)
    if not sparse and not isinstance(p, np.ndarray):
        raise err(source, f"probabilities must be a numpy array or scipy sparse, got {type(p).__name__}")
    if len(p.shape) != 2 or p.shape != (n, q):
        raise err(source, f"probabilities must have shape (N={n}, Q={q}), got {p.shape}")
    if p.dtype.kind != "f":
        raise err(source, f"probabilities must be floats, got {p.dtype}")
    if not verify_values:
        return
    if sparse:
        csr = p.tocsr()
        pos = first_bad(csr.data, _bad_prob)
        if pos is not None:
            k = pos[0]
            row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
            raise err(source, f"probability {csr.data[k]} outside [0, 1]", row=row, column=f"class {csr.indices[k]}")
        return
    pos = first_bad(p, _bad_prob)
    if pos is not None:
        raise err(source, f"probability {p[pos]} outside [0, 1]", row=pos[0], column=f"class {pos[1]}")


def check_prob_sums(p: Any, source: str, tolerance: float = PROB_TOLERANCE) -> None:
    """Refuse image probabilities whose rows do not sum to 1 (a distribution per row).

    Args:
        p: (N, Q) dense array, memmap or scipy sparse matrix (values already checked).
        source: file named in messages.
        tolerance: allowed absolute deviation of a row sum from 1.

    Raises:
        DatasetError: ``probs.npy:12: row sums to 0.97; expected 1 within 0.001 ...``.
    """
    if scipy.sparse.issparse(p):
        sums = np.asarray(p.sum(axis=1), dtype=np.float64).ravel()
        pos = first_bad(sums, lambda c: np.abs(c - 1.0) > tolerance)
    else:
        pos = first_bad(p, lambda c: np.broadcast_to(
            np.abs(c.sum(axis=1, dtype=np.float64) - 1.0)[:, None] > tolerance, c.shape))
        sums = None
    if pos is not None:
        total = float(sums[pos[0]]) if sums is not None else float(np.sum(p[pos[0]], dtype=np.float64))
        raise err(source, f"row sums to {total:.6g}; expected 1 within {tolerance} (probabilities in the "
                          "dataset's class order, one distribution per row)", row=pos[0])


def feature_dtype(arr: np.ndarray) -> np.dtype:
    """The stored dtype of features: float16 stays float16; any other float is float32.

    Args:
        arr: (N, D) float features.

    Returns:
        The dtype to store them in.
    """
    return np.dtype(np.float16) if arr.dtype == np.float16 else np.dtype(np.float32)


def save_npy(path: Path, arr: Any, dtype: np.dtype) -> None:
    """Write ``arr`` as ``.npy`` chunk by chunk (works for memmaps larger than RAM).

    Args:
        path: the output file.
        arr: (N, ...) array or memmap.
        dtype: the stored dtype.
    """
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=arr.shape)
    step = _rows_per_chunk(out)
    for start in range(0, arr.shape[0], step):
        out[start : start + step] = arr[start : start + step]
    out.flush()
    del out


def save_probs(root: Path, stem: str, p: Any) -> str:
    """Write probabilities as ``stem.npy`` (dense float32) or ``stem.npz`` (sparse CSR).

    Args:
        root: the directory.
        stem: the file name without extension.
        p: (N, Q) dense array or scipy sparse matrix.

    Returns:
        The file name written.
    """
    if scipy.sparse.issparse(p):
        name = f"{stem}.npz"
        scipy.sparse.save_npz(root / name, scipy.sparse.csr_matrix(p, dtype=np.float32))
    else:
        name = f"{stem}.npy"
        save_npy(root / name, p, np.dtype(np.float32))
    return name
