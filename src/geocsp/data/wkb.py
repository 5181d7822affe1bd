"""Point geometries from well-known binary (WKB), with NumPy and :mod:`struct` only.

GeoParquet stores geometries as WKB (ISO or PostGIS EWKB flavour). geocsp reads points
only: a point is ``byte order (1) | type (uint32) | [SRID (uint32)] | x | y [| z] [| m]``
(doubles). 2-D points (21 bytes each, the common case) are decoded in one vectorised pass;
others (Z/M dimensions, an EWKB SRID) row by row. An empty point (NaN, NaN) or a null
geometry is a missing location; any other geometry type is refused, naming its row.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from geocsp.errors import DatasetError

GEOMETRY_TYPES = {1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
                  6: "MultiPolygon", 7: "GeometryCollection"}
"""WKB base type codes -> OGC names (for messages)."""

_EWKB_Z, _EWKB_M, _EWKB_SRID = 0x80000000, 0x40000000, 0x20000000
_POINT_2D = 21  # bytes of a 2-D ISO point: 1 + 4 + 2 * 8


def wkb_type_name(code: int) -> str:
    """The OGC name of a WKB type code (ISO ``1001`` = Point Z; EWKB flag bits ignored).

    Args:
        code: the uint32 type word.

    Returns:
        ``"Point"``, ``"Polygon"``... or ``"type <code>"`` for an unknown code.
    """
    base = (code & 0x0FFFFFFF) % 1000
    return GEOMETRY_TYPES.get(base, f"type {code}")


def wkb_points(blobs: Sequence[bytes | None], source: str) -> np.ndarray:
    """(N, 2) float64 (x, y) of WKB point geometries; null or empty points are NaN rows.

    Args:
        blobs: N WKB values (None = null geometry).
        source: the file named in messages.

    Returns:
        (N, 2) float64 x, y in the geometry's CRS (lon, lat degrees for OGC:CRS84).

    Raises:
        DatasetError: ``source: row i: geometry type 'Polygon'; expected Point geometries``, or
            on a truncated / malformed value.
    """
    out = np.full((len(blobs), 2), np.nan)
    present = [(i, bytes(b)) for i, b in enumerate(blobs) if b is not None]
    rows = np.fromiter((i for i, _ in present), dtype=np.int64, count=len(present))
    values = [b for _, b in present]
    if values and all(len(b) == _POINT_2D for b in values):
        buf = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(-1, _POINT_2D)
        little = buf[:, 0] == 1
        kind = np.where(little, buf[:, 1:5].copy().view("<u4")[:, 0], buf[:, 1:5].copy().view(">u4")[:, 0])
        if np.all(kind == 1) and np.all(buf[:, 0] <= 1):
            xy_le = buf[:, 5:].copy().view("<f8")
            xy_be = buf[:, 5:].copy().view(">f8")
            out[rows] = np.where(little[:, None], xy_le, xy_be)
            return out
    for i, b in present:
        out[i] = _one_point(b, source, i)
    return out


def _one_point(blob: bytes, source: str, row: int) -> tuple[float, float]:
    """(x, y) of one WKB point (any dimension, ISO or EWKB)."""
    try:
        order = {0: ">", 1: "<"}[blob[0]]
        (code,) = struct.unpack_from(order + "I", blob, 1)
        offset = 5 + (4 if code & _EWKB_SRID else 0)
        if wkb_type_name(code) != "Point":
            raise DatasetError(f"{source}: row {row}: geometry type {wkb_type_name(code)!r}; "
                               "expected Point geometries (one location per row)")
        x, y = struct.unpack_from(order + "dd", blob, offset)
    except (IndexError, KeyError, struct.error):
        raise DatasetError(f"{source}: row {row}: malformed or truncated WKB geometry "
                           f"({len(blob)} bytes); expected a WKB Point") from None
    return float(x), float(y)
