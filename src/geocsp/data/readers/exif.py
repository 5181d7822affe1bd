"""Geotagged photos: (lon, lat) from the EXIF GPS IFD, and a folder of photos -> table.

Pillow reads the GPS IFD (tag ``0x8825``); latitude/longitude are stored as three
rationals (degrees, minutes, seconds) plus a hemisphere reference (``N``/``S``,
``E``/``W``). Photos without GPS and photos with invalid GPS (latitude 95, longitude 200,
an unknown reference...) are kept with missing coordinates and listed separately, never
silently dropped; files that cannot be decoded are listed too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from PIL import Image
from PIL.Image import Exif

from geocsp.data.dataset import SplitData, write_dataset
from geocsp.data.tables import refuse_existing
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


class GpsReading(NamedTuple):
    """The GPS position of a photo: ``lonlat`` when valid; ``problem`` when present but invalid.

    Both None: the photo has no GPS position.
    """

    lonlat: tuple[float, float] | None
    problem: str | None = None


def read_gps_tags(exif: Exif) -> GpsReading:
    """The (lon, lat) of a Pillow ``Exif`` object's GPS IFD, or why it is invalid.

    A missing reference tag is read as N/E (positive).

    Args:
        exif: the image's EXIF data.

    Returns:
        ``GpsReading((lon, lat))`` in degrees (west/south negative); ``GpsReading(None)``
        without GPS; ``GpsReading(None, "latitude 95 outside [-90, 90]")`` for values out
        of range, non-numbers, unknown hemisphere references or a malformed GPS block.
    """
    try:
        gps = exif.get_ifd(GPS_IFD)
    except Exception:  # Pillow raises many types for a malformed IFD
        return GpsReading(None, "malformed GPS block")
    if not gps or (_LAT not in gps and _LON not in gps):
        return GpsReading(None)
    values = []
    for name, tag, ref_tag, refs, limit in (("latitude", _LAT, _LAT_REF, "NS", 90), ("longitude", _LON, _LON_REF, "EW", 180)):
        if tag not in gps:
            return GpsReading(None, f"{name} missing")
        value, ref = _dms_to_deg(gps[tag]), _ref(gps.get(ref_tag, refs[0]))
        if ref not in (*refs, ""):
            return GpsReading(None, f"{name} reference {ref!r} is not {refs[0]} or {refs[1]}")
        if not math.isfinite(value):
            return GpsReading(None, f"{name} is not a number")
        value = -value if ref == refs[1] else value
        if abs(value) > limit:
            return GpsReading(None, f"{name} {value:g} outside [-{limit}, {limit}]")
        values.append(value)
    return GpsReading((values[1], values[0]))


def gps_from_exif(exif: Exif) -> tuple[float, float] | None:
    """(lon, lat) in degrees from a Pillow ``Exif`` object, or None without valid GPS.

    Args:
        exif: the image's EXIF data.

    Returns:
        ``(lon, lat)`` degrees (west/south negative), or None (see :func:`read_gps_tags`
        for why a position is invalid).
    """
    return read_gps_tags(exif).lonlat


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
    return read_photo_gps(path).lonlat


def read_photo_gps(path: str | Path) -> GpsReading:
    """The EXIF GPS reading of a photo: valid, absent, or invalid with the reason.

    Args:
        path: an image file (JPEG, TIFF, PNG, WebP with EXIF).

    Returns:
        A :class:`GpsReading` (see :func:`read_gps_tags`).

    Raises:
        MissingFileError: if ``path`` does not exist.
        DatasetError: if the file cannot be opened as an image.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: photo not found")
    try:
        with Image.open(p) as img:
            return read_gps_tags(img.getexif())
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


class PhotoScan(NamedTuple):
    """What :func:`scan_photos` found.

    Attributes:
        table: one row per readable photo: ``image`` (path relative to the folder), ``lon``,
            ``lat`` (degrees; NaN without a valid GPS position), ``label`` (only when
            sub-folders exist).
        no_gps: relative paths of readable photos without GPS.
        unreadable: relative paths of files that could not be decoded (not in the table).
        invalid_gps: ``"<path>: latitude 95 outside [-90, 90]"`` for photos whose GPS
            position is invalid (in the table with a missing location).
    """

    table: pd.DataFrame
    no_gps: list[str]
    unreadable: list[str]
    invalid_gps: list[str]


def scan_photos(folder: str | Path, recursive: bool = True) -> PhotoScan:
    """Read the EXIF GPS position of every photo under ``folder``.

    Args:
        folder: root folder; labels are taken from the first sub-folder level when any
            photo lies in a sub-folder (photos at the root are then unlabelled).
        recursive: also walk sub-folders.

    Returns:
        ``(table, no_gps, unreadable, invalid_gps)`` (:class:`PhotoScan`).

    Raises:
        MissingFileError: if ``folder`` is not a directory.
    """
    root = Path(folder)
    rows: list[dict[str, Any]] = []
    no_gps: list[str] = []
    unreadable: list[str] = []
    invalid: list[str] = []
    for path in list_images(root, recursive):
        rel = path.relative_to(root).as_posix()
        try:
            reading = read_photo_gps(path)
        except DatasetError:
            unreadable.append(rel)
            continue
        if reading.problem is not None:
            invalid.append(f"{rel}: {reading.problem}")
        elif reading.lonlat is None:
            no_gps.append(rel)
        lon, lat = reading.lonlat or (math.nan, math.nan)
        rows.append({"image": rel, "lon": lon, "lat": lat, "label": label_from_path(rel)})
    table = pd.DataFrame(rows, columns=["image", "lon", "lat", "label"])
    if table["label"].isna().all():
        table = table.drop(columns="label")
    return PhotoScan(table, no_gps, unreadable, invalid)


def import_photos(
    folder: str | Path, out: str | Path, *, split: str = "train", recursive: bool = True,
    overwrite: bool = False,
) -> tuple[Path, PhotoScan]:
    """Write the EXIF GPS positions of a photo folder as a geocsp dataset (no features).

    Photos without GPS or with invalid GPS are kept with an empty location; unreadable
    files are left out; sub-folder names become labels (see :func:`scan_photos`). The
    provenance lists ``without_gps``, ``invalid_gps`` and ``unreadable``.

    Args:
        folder: the photo folder.
        out: the dataset directory to write (atomically).
        split: the split name.
        recursive: also walk sub-folders.
        overwrite: replace an existing dataset at ``out`` (else it is refused before any work).

    Returns:
        (the dataset directory, what :func:`scan_photos` found: the table written, photos
        without GPS, unreadable files, photos with invalid GPS).

    Raises:
        MissingFileError: if ``folder`` is not a directory.
        DatasetError: when no photo in it is readable.
        ConfigError: on an existing ``out`` without ``overwrite``.
    """
    refuse_existing(out, overwrite)
    scan = scan_photos(folder, recursive=recursive)
    if scan.table.empty:
        raise DatasetError(f"{folder}: no readable photos found")
    table = scan.table
    classes = sorted(table["label"].dropna().unique().tolist()) if "label" in table else []
    prov = {"source": "exif", "photos_dir": str(folder), "without_gps": scan.no_gps,
            "invalid_gps": scan.invalid_gps, "unreadable": scan.unreadable}
    path = write_dataset(out, {split: SplitData(table)}, classes, provenance=prov)
    return path, scan
