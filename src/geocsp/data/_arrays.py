"""Validation and file helpers of the dataset format: reading tables and arrays safely, streaming
validation of large (memory-mapped) arrays, and chunked writing. No pickle anywhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geocsp.coords import validate_lonlat
from geocsp.errors import DatasetError, GeocspError, MissingFileError

_CHUNK_BYTES = 64 << 20
PROB_TOLERANCE = 1e-3
"""Probabilities may exceed 1 by this much (float16 rounding)."""

_TEXT_COLUMNS = {"label": "string", "image": "string", "date": "string"}


def err(source: Any, message: str, *, row: int | None = None, column: str | None = None) -> DatasetError:
    """A one-line DatasetError ``source:row:column: message`` (missing parts omitted)."""
    where = str(source)
    if row is not None:
        where += f":{row}"
    if column is not None:
        where += f":{column}"
    return DatasetError(f"{where}: {message}")


def show(value: Any) -> str:
    """repr of a cell value for messages (numpy scalars shown as plain Python values)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _exists(path: Path) -> None:
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV table. In CSV only empty cells are missing ("NA" is text).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when the file is not a readable table.
    """
    p = Path(path)
    _exists(p)
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix == ".csv":
            return pd.read_csv(p, keep_default_na=False, na_values=[""], dtype=_TEXT_COLUMNS)
    except Exception as e:  # pyarrow/pandas raise many types for corrupt input
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise err(p, f"unreadable {suffix[1:]} table ({type(e).__name__}: {first[:120]})") from None
    raise err(p, "unsupported table format; expected .parquet or .csv")


def load_npy(path: str | Path) -> np.ndarray:
    """Memory-map an ``.npy`` file read-only (no pickle).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is truncated, corrupt or holds objects.
    """
    p = Path(path)
    _exists(p)
    try:
        return np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # ValueError (truncated / object), OSError, EOFError
        raise err(p, f"unreadable .npy array ({type(e).__name__}: {str(e)[:120]})") from None


def load_probs(path: str | Path) -> Any:
    """Load probabilities: ``.npy`` memory-mapped, ``.npz`` via ``scipy.sparse.load_npz``.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is unreadable or has another extension.
    """
    p = Path(path)
    if p.suffix == ".npy":
        return load_npy(p)
    if p.suffix != ".npz":
        raise err(p, "probabilities must be a dense .npy or a scipy-sparse .npz file")
    _exists(p)
    import scipy.sparse

    try:
        return scipy.sparse.load_npz(p).tocsr()
    except Exception as e:  # zipfile/ValueError/KeyError on corrupt or non-sparse archives
        raise err(p, f"not a scipy sparse .npz matrix ({type(e).__name__}: {str(e)[:120]})") from None


def first_bad(arr: Any, bad: Any) -> tuple[int, ...] | None:
    """Index of the first element where ``bad(chunk)`` is True, scanning row chunks.

    Args:
        arr: (N, ...) array or memmap; read ~64 MiB at a time.
        bad: function mapping a chunk to a boolean mask of the same shape.
    """
    row_bytes = max(1, int(arr.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))))
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, arr.shape[0], step):
        mask = bad(np.asarray(arr[start : start + step]))
        if mask.any():
            pos = np.argwhere(mask)[0]
            return (start + int(pos[0]), *(int(x) for x in pos[1:]))
    return None


def check_features(arr: Any, n: int, source: str, *, verify_values: bool = True) -> int:
    """Validate an (N, D) float feature matrix; returns D.

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

    Raises:
        DatasetError: on a wrong type/shape or a value that is NaN/inf or outside [0, 1].
    """
    import scipy.sparse

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


def feature_dtype(arr: np.ndarray) -> np.dtype:
    """float16 stays float16; any other float is stored as float32."""
    return np.dtype(np.float16) if arr.dtype == np.float16 else np.dtype(np.float32)


def save_npy(path: Path, arr: Any, dtype: np.dtype) -> None:
    """Write ``arr`` as ``.npy`` chunk by chunk (works for memmaps larger than RAM)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=arr.shape)
    row_bytes = max(1, int(out.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))))
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, arr.shape[0], step):
        out[start : start + step] = arr[start : start + step]
    out.flush()
    del out


def save_probs(root: Path, stem: str, p: Any) -> str:
    """Write probabilities as ``stem.npy`` (dense float32) or ``stem.npz`` (sparse CSR).

    Returns:
        The file name written.
    """
    import scipy.sparse

    if scipy.sparse.issparse(p):
        name = f"{stem}.npz"
        scipy.sparse.save_npz(root / name, scipy.sparse.csr_matrix(p, dtype=np.float32))
    else:
        name = f"{stem}.npy"
        save_npy(root / name, p, np.dtype(np.float32))
    return name


# ---------------------------------------------------------------- table validation


def check_classes(classes: Any, source: str) -> list[str]:
    """Validate the ordered class list: unique, non-empty strings.

    Raises:
        DatasetError: on a non-list, an empty name or a duplicate.
    """
    if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
        raise err(source, "classes must be a list of class-name strings", column="classes")
    seen: set[str] = set()
    for i, c in enumerate(classes):
        if not c:
            raise err(source, f"class {i} has an empty name", column="classes")
        if c in seen:
            raise err(source, f"duplicate class name {c!r} at position {i}", column="classes")
        seen.add(c)
    return list(classes)


def table_lonlat(table: pd.DataFrame, source: str, *, wrap: bool = False) -> np.ndarray:
    """(N, 2) float64 degrees from the ``lon``/``lat`` columns; empty cells become NaN.

    Args:
        table: N rows with ``lon`` and ``lat`` columns (numbers or numeric text).
        source: file or split named in messages.
        wrap: wrap longitudes outside [-180, 180] instead of refusing them.

    Raises:
        DatasetError: on a missing column or a non-numeric cell.
        CoordinateError: on out-of-range, half-missing or swapped coordinates.
    """
    cols = []
    for col in ("lon", "lat"):
        if col not in table.columns:
            raise err(source, f"missing column; available columns: {_cols(table)}", column=col)
        raw = table[col]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            cols.append(raw.to_numpy(dtype=np.float64, na_value=np.nan))
            continue
        num = pd.to_numeric(raw, errors="coerce")
        empty = raw.isna() | (raw.astype("string").str.strip() == "").fillna(True)
        bad = num.isna().to_numpy() & ~empty.to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise err(source, f"not a number: {show(raw.iloc[i])}; expected degrees", row=i, column=col)
        cols.append(num.to_numpy(dtype=np.float64, na_value=np.nan))
    return validate_lonlat(np.stack(cols, axis=1), wrap=wrap, allow_missing=True, source=source)


def label_strings(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Labels as strings (integral floats such as 3.0 become "3") and the (N,) missing mask."""
    s = series
    if pd.api.types.is_float_dtype(s):
        vals = s.dropna().to_numpy()
        if len(vals) and np.all(np.mod(vals, 1) == 0):
            s = s.astype("Int64")
    s = s.astype("string")
    missing = (s.isna() | (s.str.len() == 0)).to_numpy(dtype=bool, na_value=True)
    return s, missing


def encode_labels(series: pd.Series, classes: list[str], source: str) -> np.ndarray:
    """Map class-name labels to (N,) int64 indices into ``classes``; empty = -1.

    Raises:
        DatasetError: naming the first row whose label is not a class.
    """
    s, missing = label_strings(series)
    codes = pd.Index(classes).get_indexer(s.to_numpy(dtype=object, na_value=None))
    codes = codes.astype(np.int64)
    unknown = (codes < 0) & ~missing
    if unknown.any():
        idx = np.flatnonzero(unknown)
        more = f" ({len(idx)} rows in all)" if len(idx) > 1 else ""
        raise err(
            source,
            f"unknown class {s.iloc[int(idx[0])]!r}{more}; expected a name from the "
            f"manifest classes ({len(classes)} classes)",
            row=int(idx[0]),
            column="label",
        )
    codes[missing] = -1
    return codes


def _cols(table: pd.DataFrame) -> str:
    return ", ".join(map(str, table.columns)) or "(none)"


class Problems:
    """Collects DatasetErrors (``collect=True``) or lets the first one propagate."""

    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.items: list[str] = []

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Run a block; a GeocspError inside is recorded (collect mode) or re-raised."""
        try:
            yield
        except GeocspError as e:
            if not self.collect:
                raise
            self.items.append(str(e))
