"""Generic table reader (CSV, Parquet, GeoParquet, GeoJSON) with user-named columns -> a geocsp split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from geocsp.data.dataset import SplitData, write_dataset
from geocsp.data.format import check_probs_key, load_npy
from geocsp.data.labels import check_classes, encode_labels, label_strings, refuse_missing_as_text
from geocsp.data.probs import read_probs_file
from geocsp.data.tables import (
    err,
    open_table,
    point_crs,
    refuse_existing,
    rename_columns,
    require_column,
    show,
    table_lonlat,
)
from geocsp.errors import DatasetError


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
    crs: str | None = None,
) -> SplitData:
    """Read a table and rename its columns to the geocsp ones.

    The named columns become ``lon``, ``lat``, ``label``, ``date`` and ``image``;
    ``feature_cols`` are moved into an (N, D) float32 feature matrix; every other column is
    kept as an extra (covariate) column. In a GeoParquet / GeoJSON file the point geometry
    gives ``lon``, ``lat`` unless other columns are named.

    Args:
        path: a ``.csv``, ``.csv.gz``, ``.parquet``, GeoParquet or ``.geojson`` file.
        lon_col: column of longitudes in degrees (x in ``crs``).
        lat_col: column of latitudes in degrees (y in ``crs``).
        label_col: column of class names, or None.
        date_col: column of ISO dates, or None.
        image_col: column of image paths or ids, or None.
        feature_cols: numeric columns forming the image features, or None.
        wrap_lon: wrap longitudes outside [-180, 180] instead of refusing them.
        crs: the CRS of the locations (``EPSG:28355``), reprojected to lon/lat degrees with
            :func:`geocsp.crs.to_lonlat`; None = degrees (or a geo file's declared CRS).

    Returns:
        A :class:`~geocsp.data.dataset.SplitData` (probabilities empty).

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: on an unreadable file, an empty table, a missing column (the message
            lists the available ones) or non-numeric feature cells.
        CoordinateError: on invalid or swapped coordinates.
        ConfigError: on an unknown ``crs``.
    """
    p = Path(path)
    geometry_crs, column_crs = point_crs(p, lon_col, lat_col, crs) if p.is_file() else (None, crs)
    raw = open_table(p, sep=None, crs=geometry_crs)  # `,` `;` or tab, as the header shows
    named = {lon_col: ("lon", "--lon-col"), lat_col: ("lat", "--lat-col")}
    for col, new, opt in ((label_col, "label", "--label-col"), (date_col, "date", "--date-col"), (image_col, "image", "--image-col")):
        if col is not None:
            named[col] = (new, opt)
    features = None
    if feature_cols:
        for col in feature_cols:
            require_column(raw, p, col, "--feature-cols")
        features = _feature_matrix(raw, feature_cols, p)
    table = rename_columns(raw.drop(columns=list(feature_cols or [])), p, named)
    lonlat = table_lonlat(table, str(p), wrap=wrap_lon, crs=column_crs)
    table["lon"], table["lat"] = lonlat[:, 0], lonlat[:, 1]
    return SplitData(table=table.reset_index(drop=True), features=features)


def _feature_matrix(raw: pd.DataFrame, cols: list[str], path: Path) -> np.ndarray:
    """(N, D) float32 features from the numeric columns ``cols``."""
    block = raw[cols].apply(pd.to_numeric, errors="coerce")
    bad = block.isna().to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise err(path, f"feature cell {show(raw[cols[c]].iloc[r])} is not a finite number", row=int(r), column=cols[c])
    return block.to_numpy(dtype=np.float32)


def classes_from_labels(split: SplitData, classes_file: str | Path | None = None) -> list[str]:
    """The ordered class list of a split.

    Args:
        split: the split read by :func:`read_table`.
        classes_file: file of class names, one per line, or None for the sorted distinct
            labels of the table.

    Returns:
        The class names in index order (empty without labels or a classes file).

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


def split_rows(sd: SplitData, split_col: str, source: Path) -> dict[str, SplitData]:
    """Divide a table (and its row-aligned features and probabilities) by a split-name column.

    Args:
        sd: the whole table; ``split_col`` is dropped from the parts.
        split_col: the column naming each row's split (``train``, ``val``, ``calib``...).
        source: the file named in messages.

    Returns:
        Split name -> its rows, in order of first appearance.

    Raises:
        DatasetError: on a missing column or an empty split-name cell.
    """
    require_column(sd.table, source, split_col, "--split-col")
    names, missing = label_strings(sd.table[split_col])
    if missing.any():
        raise err(source, "empty split name; every row needs one", row=int(np.flatnonzero(missing)[0]), column=split_col)
    table = sd.table.drop(columns=[split_col])
    out = {}
    for name in pd.unique(names.to_numpy()):
        rows = np.flatnonzero((names == name).to_numpy())
        out[str(name)] = SplitData(
            table=table.iloc[rows].reset_index(drop=True),
            features=None if sd.features is None else np.asarray(sd.features[rows]),
            probs={k: p[rows] for k, p in sd.probs.items()},
        )
    return out


def import_table(
    path: str | Path,
    out: str | Path,
    *,
    split: str = "train",
    split_col: str | None = None,
    probs: Mapping[str, str | Path] | None = None,
    lon_col: str = "lon",
    lat_col: str = "lat",
    label_col: str | None = None,
    date_col: str | None = None,
    image_col: str | None = None,
    feature_cols: list[str] | None = None,
    features_file: str | Path | None = None,
    classes_file: str | Path | None = None,
    wrap_lon: bool = False,
    crs: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, int, int]:
    """Convert a table (CSV, Parquet, GeoParquet, GeoJSON) with user-named columns into a geocsp dataset.

    Args:
        path: the table (``.csv``, ``.csv.gz``, ``.parquet``, GeoParquet, ``.geojson``).
        out: the dataset directory to write (atomically).
        split: the split name (without ``split_col``).
        split_col: column naming each row's split; rows, features and probabilities are
            divided by it (``split`` is then ignored).
        probs: probability key (``default``, ``ratio{λ:.3f}``) -> row-aligned (N, Q) ``.npy``
            (or scipy-sparse ``.npz``) image-classifier probabilities in the class order,
            covering all rows of the table.
        lon_col: column of longitudes in degrees.
        lat_col: column of latitudes in degrees.
        label_col: column of class names, or None.
        date_col: column of ISO dates, or None.
        image_col: column of image paths or ids, or None.
        feature_cols: numeric columns used as (N, D) image features, or None.
        features_file: a row-aligned (N, D) float ``.npy`` of image features, or None.
        classes_file: class names one per line (the class order); default: sorted labels.
        wrap_lon: wrap longitudes outside [-180, 180] instead of refusing them.
        crs: the CRS of the locations, as in :func:`read_table`.
        overwrite: replace an existing dataset at ``out`` (else it is refused before any work).

    Returns:
        (the dataset directory, number of rows, number of classes).

    Raises:
        DatasetError: on unreadable input, both ``feature_cols`` and ``features_file``, an
            invalid probability key or file, or an empty ``split_col`` cell.
        CoordinateError: on invalid or swapped coordinates.
        MissingFileError: when an input file does not exist.
        ConfigError: on an existing ``out`` without ``overwrite``, or an unknown ``crs``.
    """
    refuse_existing(out, overwrite)
    sd = read_table(path, lon_col, lat_col, label_col, date_col, image_col, feature_cols, wrap_lon=wrap_lon, crs=crs)
    if features_file is not None:
        if sd.features is not None:
            raise DatasetError("give either --features or --feature-cols, not both")
        sd.features = load_npy(features_file)
    if classes_file is None and "label" in sd.table.columns:  # --classes names the classes explicitly
        refuse_missing_as_text(sd.table["label"], str(path), label_col or "label")
    classes = classes_from_labels(sd, classes_file)
    if classes_file is not None and "label" in sd.table.columns:  # a label --classes lacks: name the file's row
        encode_labels(sd.table["label"], classes, str(path), column=label_col or "label",
                      classes_from=f"--classes {Path(classes_file).name}")
    for key, file in (probs or {}).items():
        check_probs_key(key, f"--probs {key}={file}")
        sd.probs[key] = read_probs_file(file, len(sd.table), len(classes))
    splits = split_rows(sd, split_col, Path(path)) if split_col is not None else {split: sd}
    provenance = {"reader": "geocsp.data.readers.table", "source": str(Path(path).resolve())}
    if crs is not None:
        provenance["crs"] = crs
    written = write_dataset(out, splits, classes, provenance)
    return written, len(sd.table), len(classes)
