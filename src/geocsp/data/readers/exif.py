"""Geotagged photos: (lon, lat) from the EXIF GPS IFD, and a folder of photos -> table.

Pillow reads the GPS IFD (tag ``0x8825``); latitude/longitude are stored as three
rationals (degrees, minutes, seconds) plus a hemisphere reference (``N``/``S``,
``E``/``W``). Photos without usable GPS are kept (with missing coordinates) and listed,
never silently dropped; files that cannot be decoded are listed separately.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from PIL.Image import Exif

from geocsp.data.dataset import SplitData, write_dataset
from geocsp.errors import DatasetError, MissingFileError

GPS_IFD = 0x8825
_LAT_REF, _LAT, _LON_REF, _LON = 1, 2, 3, 4
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
"""File suffixes (lower case) treated as images when walking a folder."""


def _dms_to_deg(dms: Any) -> float:
    """Degrees from a (deg, min, sec) triple of rationals (or a single number)."""
    parts = list(dms) if isinstance(dms, (tuple, list)) else [dms]
    if not 1 <= len(parts) <= 3:
        return math.nan
    total = 0.0
    for value, scale in zip(parts, (1.0, 60.0, 3600.0), strict=False):
        try:
            v = float(value)  # IFDRational with a zero denominator gives nan
        except (TypeError, ValueError, ZeroDivisionError):
            return math.nan
        total += v / scale
    return total


def _ref(value: Any) -> str:
    """A GPS hemisphere reference as one upper-case letter ("" when absent)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    return str(value or "").strip().strip("\x00").upper()[:1]


def gps_from_exif(exif: Exif) -> tuple[float, float] | None:
    """(lon, lat) in degrees from a Pillow ``Exif`` object, or None without valid GPS.

    A missing reference tag is read as N/E (positive). Values outside [-180, 180] x
    [-90, 90], NaN values and unknown references give None.

    Args:
        exif: the image's EXIF data.

    Returns:
        ``(lon, lat)`` degrees (west/south negative), or None.
    """
    try:
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # a malformed IFD: treat as "no GPS"
        return None
    if not gps or _LAT not in gps or _LON not in gps:
        return None
    lat, lon = _dms_to_deg(gps[_LAT]), _dms_to_deg(gps[_LON])
    lat_ref, lon_ref = _ref(gps.get(_LAT_REF, "N")), _ref(gps.get(_LON_REF, "E"))
    if lat_ref not in ("N", "S", "") or lon_ref not in ("E", "W", ""):
        return None
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None
    return lon, lat


def read_gps(path: str | Path) -> tuple[float, float] | None:
    """(lon, lat) in degrees from a photo's EXIF GPS tags, or None if it has none.

    Args:
        path: an image file (JPEG, TIFF, PNG, WebP with EXIF).

    Returns:
        ``(lon, lat)`` degrees (west/south negative), or None when the file has no
        (valid) GPS position.

    Raises:
        MissingFileError: if ``path`` does not exist.
        DatasetError: if the file cannot be opened as an image.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: photo not found")
    try:
        with Image.open(p) as img:
            return gps_from_exif(img.getexif())
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"{p}: cannot read image ({type(e).__name__}: {e})") from None


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by suffix), sorted by relative POSIX path.

    Args:
        folder: the root folder.
        recursive: also walk sub-folders.

    Returns:
        The image paths.

    Raises:
        MissingFileError: if ``folder`` is not a directory.
    """
    root = Path(folder)
    if not root.is_dir():
        raise MissingFileError(f"{root}: image folder not found")
    it = root.rglob("*") if recursive else root.glob("*")
    files = [
        p for p in it
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def label_from_path(rel: str) -> str | None:
    """The first sub-folder of a relative POSIX path (the class), or None at the root.

    Args:
        rel: a path relative to the photo folder, ``/``-separated.

    Returns:
        The label, or None.
    """
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else None


def scan_photos(
    folder: str | Path, recursive: bool = True
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Read the EXIF GPS position of every photo under ``folder``.

    Args:
        folder: root folder; labels are taken from the first sub-folder level when any
            photo lies in a sub-folder (photos at the root are then unlabelled).
        recursive: also walk sub-folders.

    Returns:
        ``(table, no_gps, unreadable)``: the table has one row per readable photo with
        columns ``image`` (path relative to ``folder``), ``lon``, ``lat`` (degrees, NaN
        when the photo has no GPS) and ``label`` (only when sub-folders exist);
        ``no_gps`` lists the relative paths of readable photos without GPS;
        ``unreadable`` lists files that could not be decoded.

    Raises:
        MissingFileError: if ``folder`` is not a directory.
    """
    root = Path(folder)
    rows: list[dict[str, Any]] = []
    no_gps: list[str] = []
    unreadable: list[str] = []
    for path in list_images(root, recursive):
        rel = path.relative_to(root).as_posix()
        try:
            ll = read_gps(path)
        except DatasetError:
            unreadable.append(rel)
            continue
        if ll is None:
            no_gps.append(rel)
            ll = (math.nan, math.nan)
        rows.append({"image": rel, "lon": ll[0], "lat": ll[1], "label": label_from_path(rel)})
    table = pd.DataFrame(rows, columns=["image", "lon", "lat", "label"])
    if table["label"].isna().all():
        table = table.drop(columns="label")
    return table, no_gps, unreadable


def import_photos(
    folder: str | Path, out: str | Path, *, split: str = "train", recursive: bool = True
) -> tuple[Path, pd.DataFrame, list[str], list[str]]:
    """Write the EXIF GPS positions of a photo folder as a geocsp dataset (no features).

    Photos without GPS are kept with an empty location; unreadable files are left out;
    sub-folder names become labels (see :func:`scan_photos`).

    Args:
        folder: the photo folder.
        out: the dataset directory to write (atomically).
        split: the split name.
        recursive: also walk sub-folders.

    Returns:
        (the dataset directory, the table written, photos without GPS, unreadable files).

    Raises:
        MissingFileError: if ``folder`` is not a directory.
        DatasetError: when no photo in it is readable.
    """
    table, no_gps, unreadable = scan_photos(folder, recursive=recursive)
    if table.empty:
        raise DatasetError(f"{folder}: no readable photos found")
    classes = sorted(table["label"].dropna().unique().tolist()) if "label" in table else []
    prov = {"source": "exif", "photos_dir": str(folder), "without_gps": no_gps,
            "unreadable": unreadable}
    path = write_dataset(out, {split: SplitData(table)}, classes, provenance=prov)
    return path, table, no_gps, unreadable
