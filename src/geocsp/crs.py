"""Projected coordinates: ``--crs EPSG:N`` tables reprojected to (lon, lat) degrees.

geocsp works in (lon, lat) degrees (EPSG:4326) everywhere. A table whose point columns are
in another coordinate reference system (e.g. metres in EPSG:28355, GDA94 / MGA zone 55) is
reprojected once, where it is read, with pyproj (an optional dependency:
``pip install geocsp[crs]``). The result then goes through :func:`geocsp.coords.validate_lonlat`
like any other input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geocsp.errors import ConfigError

WGS84 = "EPSG:4326"
"""The CRS of every geocsp coordinate (lon, lat in degrees)."""


def parse_crs(crs: str, *, source: str = "--crs") -> Any:
    """The pyproj CRS of a user string such as ``EPSG:28355``.

    Args:
        crs: any string pyproj understands (``EPSG:N``, a PROJ string, WKT).
        source: what to call it in the message (a flag or config key).

    Returns:
        A ``pyproj.CRS``.

    Raises:
        ConfigError: when pyproj is not installed or does not know ``crs`` (one line).
    """
    try:
        import pyproj
    except ImportError:
        raise ConfigError(f"{source} {crs}: reprojection needs pyproj (pip install 'geocsp[crs]')") from None
    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        raise ConfigError(f"{source}: unknown coordinate reference system {crs!r} "
                          "(expected e.g. EPSG:28355)") from None


def to_lonlat(x: Any, y: Any, crs: str | None, *, source: str = "--crs") -> np.ndarray:
    """Points in ``crs`` as an ``(N, 2)`` float64 array of (lon, lat) degrees.

    Args:
        x: ``(N,)`` first coordinate (easting / longitude), in the CRS's units.
        y: ``(N,)`` second coordinate (northing / latitude).
        crs: the points' CRS; None or EPSG:4326 returns ``(x, y)`` unchanged.
        source: what to call the CRS in messages.

    Returns:
        ``(N, 2)`` float64 (lon, lat) in degrees; NaN inputs stay NaN, points outside the
        projection's domain become NaN (validate them with :func:`geocsp.coords.validate_lonlat`).

    Raises:
        ConfigError: when the CRS is unknown or pyproj is missing.

    >>> to_lonlat([10.0], [20.0], None).tolist()
    [[10.0, 20.0]]
    """
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    ys = np.asarray(y, dtype=np.float64).reshape(-1)
    if crs is None:
        return np.stack([xs, ys], axis=1)
    src = parse_crs(crs, source=source)
    if src.to_epsg() == 4326:
        return np.stack([xs, ys], axis=1)
    import pyproj

    transformer = pyproj.Transformer.from_crs(src, WGS84, always_xy=True)
    lon, lat = transformer.transform(xs, ys, errcheck=False)
    out = np.stack([np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)], axis=1)
    out[~np.isfinite(out).all(axis=1)] = np.nan
    return out
