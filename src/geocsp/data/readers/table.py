"""Generic CSV/Parquet reader with user-named columns -> a geocsp split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geocsp.data._arrays import check_classes, err, label_strings, show, table_lonlat
from geocsp.data._arrays import read_table as _read_any
from geocsp.data.dataset import SplitData


def _require(table: pd.DataFrame, path: Path, col: str, option: str) -> None:
    if col not in table.columns:
        available = ", ".join(map(str, table.columns)) or "(none)"
        raise err(path, f"column '{col}' ({option}) not found; available columns: {available}", column=col)


def read_table(
    path: str | Path,
    lon_col: str = "lon",
    lat_col: str = "lat",
    label_col: str | None = None,
    date_col: str | None = None,
    image_col: str | None = None,
    feature_cols: list[str] | None = None,
    *,
    wrap_lon: bool = False,
) -> SplitData:
    """Read a CSV/Parquet table and rename its columns to the geocsp ones.

    The named columns become ``lon``, ``lat``, ``label``, ``date`` and ``image``;
    ``feature_cols`` are moved into an (N, D) float32 feature matrix; every other column is
    kept as an extra (covariate) column.

    Args:
        path: a ``.csv`` or ``.parquet`` file.
        lon_col: column of longitudes in degrees.
        lat_col: column of latitudes in degrees.
        label_col: column of class names, or None.
        date_col: column of ISO dates, or None.
        image_col: column of image paths or ids, or None.
        feature_cols: numeric columns forming the image features, or None.
        wrap_lon: wrap longitudes outside [-180, 180] instead of refusing them.

    Returns:
        A :class:`~geocsp.data.dataset.SplitData` (probabilities empty).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: on an unreadable file, an empty table, a missing column (the message
            lists the available ones) or non-numeric feature cells.
        CoordinateError: on invalid or swapped coordinates.
    """
    p = Path(path)
    raw = _read_any(p)
    if len(raw) == 0:
        raise err(p, "empty table; expected at least one row")
    raw.columns = [str(c) for c in raw.columns]
    named = {lon_col: ("lon", "--lon-col"), lat_col: ("lat", "--lat-col")}
    for col, new, opt in ((label_col, "label", "--label-col"), (date_col, "date", "--date-col"), (image_col, "image", "--image-col")):
        if col is not None:
            named[col] = (new, opt)
    for col, (_, opt) in named.items():
        _require(raw, p, col, opt)
    features = None
    if feature_cols:
        for col in feature_cols:
            _require(raw, p, col, "--feature-cols")
        features = _feature_matrix(raw, feature_cols, p)
    rename = {col: new for col, (new, _) in named.items()}
    # keep a pre-existing column that would be shadowed, e.g. "label" when --label-col=species
    clash = {c: f"orig_{c}" for c in raw.columns if c in rename.values() and c not in rename}
    table = raw.drop(columns=list(feature_cols or [])).rename(columns={**clash, **rename})
    lonlat = table_lonlat(table, str(p), wrap=wrap_lon)
    table["lon"], table["lat"] = lonlat[:, 0], lonlat[:, 1]
    return SplitData(table=table.reset_index(drop=True), features=features)


def _feature_matrix(raw: pd.DataFrame, cols: list[str], path: Path) -> np.ndarray:
    block = raw[cols].apply(pd.to_numeric, errors="coerce")
    bad = block.isna().to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise err(path, f"feature cell {show(raw[cols[c]].iloc[r])} is not a finite number", row=int(r), column=cols[c])
    return block.to_numpy(dtype=np.float32)


def classes_from_labels(split: SplitData, classes_file: str | Path | None = None) -> list[str]:
    """The ordered class list: read from ``classes_file`` (one name per line) or the sorted
    distinct labels of the table.

    Raises:
        DatasetError: on an empty or duplicated class list.
    """
    if classes_file is not None:
        names = [ln.strip() for ln in Path(classes_file).read_text().splitlines() if ln.strip()]
        return check_classes(names, str(classes_file))
    if "label" not in split.table.columns:
        return []
    s, missing = label_strings(split.table["label"])
    return sorted(set(s[~missing].tolist()))
