"""Coordinates: the one place where (lon, lat) input is validated and units change.

Every public geocsp function takes locations as ``(N, 2)`` arrays of
``(longitude, latitude)`` in **degrees**, longitude in [-180, 180], latitude in [-90, 90].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from geocsp.errors import CoordinateError

if TYPE_CHECKING:
    import torch

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), km."""

_MAX_LISTED = 5


def _rows(idx: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:_MAX_LISTED])
    more = f" (+{len(idx) - _MAX_LISTED} more)" if len(idx) > _MAX_LISTED else ""
    return shown + more


def wrap_longitude(lon: np.ndarray) -> np.ndarray:
    """Wrap longitudes in degrees into [-180, 180).

    Args:
        lon: longitudes in degrees, any shape (array-like).

    Returns:
        float64 array of the same shape, in degrees in [-180, 180).

    >>> wrap_longitude(np.array([190.0, -190.0, 180.0, 540.0])).tolist()
    [-170.0, 170.0, -180.0, -180.0]
    """
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def validate_lonlat(
    lonlat: Any,
    *,
    wrap: bool = False,
    allow_missing: bool = False,
    source: str = "lonlat",
) -> np.ndarray:
    """Validate (lon, lat) degrees and return them as a float64 ``(N, 2)`` array.

    Args:
        lonlat: (N, 2) array-like of longitude, latitude in degrees (a single (2,) pair is
            accepted and returned as (1, 2)).
        wrap: wrap longitudes outside [-180, 180] instead of refusing them.
        allow_missing: allow rows that are entirely NaN (a missing location); rows with
            exactly one NaN are still refused.
        source: what to call the input in messages (a file name, a column pair...).

    Returns:
        (N, 2) float64 array of longitude, latitude in degrees.

    Raises:
        CoordinateError: on a wrong shape, NaN/inf, out-of-range values or swapped
            columns; the message names the offending rows and values.

    >>> validate_lonlat([[10.0, 45.0], [-180.0, -90.0]]).shape
    (2, 2)
    >>> validate_lonlat([[200.0, 10.0]], wrap=True).tolist()
    [[-160.0, 10.0]]
    """
    arr = np.array(lonlat, dtype=np.float64, copy=True)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise CoordinateError(
            f"{source}: expected an (N, 2) array of (lon, lat) degrees, got shape {arr.shape}"
        )
    lon, lat = arr[:, 0], arr[:, 1]
    nan = np.isnan(arr)
    missing = nan.all(axis=1)
    bad_nan = nan.any(axis=1) & ~(missing & allow_missing)
    if bad_nan.any():
        idx = np.flatnonzero(bad_nan)
        raise CoordinateError(
            f"{source}: NaN longitude/latitude in row(s) {_rows(idx)}; "
            "expected finite degrees" + ("" if allow_missing else " (missing locations are not allowed here)")
        )
    inf = np.isinf(arr).any(axis=1)
    if inf.any():
        idx = np.flatnonzero(inf)
        raise CoordinateError(f"{source}: infinite longitude/latitude in row(s) {_rows(idx)}")
    ok = ~missing
    with np.errstate(invalid="ignore"):
        lat_bad = ok & (np.abs(lat) > 90.0)
        lon_bad = ok & (np.abs(lon) > 180.0)
    if lat_bad.any():
        # All "lat" values fit as longitudes and all "lon" values fit as latitudes:
        # the columns are very likely swapped.
        with np.errstate(invalid="ignore"):
            swapped = np.all(np.abs(lat[ok]) <= 180.0) and np.all(np.abs(lon[ok]) <= 90.0)
        idx = np.flatnonzero(lat_bad)
        projected = bool(np.nanmax(np.abs(lat[ok])) > 1000.0 or np.nanmax(np.abs(lon[ok])) > 1000.0)
        hint = (
            "; looks like lat/lon are swapped: geocsp expects (lon, lat) column order"
            if swapped
            else "; these look like projected coordinates (metres?): name their CRS with --crs EPSG:N"
            if projected
            else ""
        )
        raise CoordinateError(
            f"{source}: latitude outside [-90, 90] in row(s) {_rows(idx)} "
            f"(e.g. {lat[idx[0]]:g}){hint}"
        )
    if lon_bad.any():
        if wrap:
            arr[ok, 0] = wrap_longitude(lon[ok])
        else:
            idx = np.flatnonzero(lon_bad)
            raise CoordinateError(
                f"{source}: longitude outside [-180, 180] in row(s) {_rows(idx)} "
                f"(e.g. {lon[idx[0]]:g}); to wrap them pass --wrap-lon (wrap=True in Python)"
            )
    return arr


def check_not_swapped(lonlat: np.ndarray, *, source: str = "lonlat") -> None:
    """Refuse a table whose latitude column lies outside [-90, 90].

    Already covered by :func:`validate_lonlat`; kept as a separate name for readers that
    validate lazily. Missing (NaN) rows are allowed.

    Args:
        lonlat: (N, 2) longitude, latitude in degrees.
        source: name used in error messages (a file or column).

    Raises:
        CoordinateError: on out-of-range or swapped coordinates.
    """
    validate_lonlat(lonlat, allow_missing=True, source=source)


def to_radians(lonlat: np.ndarray) -> np.ndarray:
    """(N, 2) degrees -> (N, 2) radians.

    Args:
        lonlat: (N, 2) longitude, latitude in degrees.

    Returns:
        (N, 2) float64 longitude, latitude in radians.

    >>> to_radians(np.array([[180.0, 90.0]])).round(6).tolist()
    [[3.141593, 1.570796]]
    """
    return np.deg2rad(np.asarray(lonlat, dtype=np.float64))


def lonlat_to_xyz(lonlat: np.ndarray) -> np.ndarray:
    """(N, 2) degrees -> (N, 3) unit-sphere Cartesian coordinates.

    x = cos(lat)cos(lon), y = cos(lat)sin(lon), z = sin(lat).

    Args:
        lonlat: (..., 2) longitude, latitude in degrees.

    Returns:
        (..., 3) float64 unit vectors (x, y, z).

    >>> lonlat_to_xyz(np.array([[0.0, 0.0], [90.0, 0.0], [0.0, 90.0]])).round(6).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    rad = to_radians(lonlat)
    lon, lat = rad[..., 0], rad[..., 1]
    c = np.cos(lat)
    return np.stack([c * np.cos(lon), c * np.sin(lon), np.sin(lat)], axis=-1)


def xyz_to_lonlat(xyz: np.ndarray) -> np.ndarray:
    """(N, 3) Cartesian (any norm > 0) -> (N, 2) degrees.

    Args:
        xyz: (..., 3) Cartesian vectors, any norm > 0.

    Returns:
        (..., 2) float64 longitude in (-180, 180], latitude in [-90, 90], degrees.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lon = np.degrees(np.arctan2(y, x))
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return np.stack([lon, lat], axis=-1)


def great_circle_km(a: np.ndarray, b: np.ndarray, radius_km: float = EARTH_RADIUS_KM) -> np.ndarray:
    """Great-circle (haversine) distance in km between (..., 2) degree arrays a and b.

    Args:
        a: (..., 2) longitude, latitude in degrees.
        b: (..., 2) longitude, latitude in degrees, broadcastable with ``a``.
        radius_km: sphere radius in km (default the mean Earth radius).

    Returns:
        (...) float64 distances in km.

    >>> float(great_circle_km(np.array([0.0, 0.0]), np.array([180.0, 0.0])).round(1))
    20015.1
    """
    ra, rb = to_radians(a), to_radians(b)
    dlon = rb[..., 0] - ra[..., 0]
    dlat = rb[..., 1] - ra[..., 1]
    h = np.sin(dlat / 2) ** 2 + np.cos(ra[..., 1]) * np.cos(rb[..., 1]) * np.sin(dlon / 2) ** 2
    return 2 * radius_km * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def deg2rad_t(x: torch.Tensor) -> torch.Tensor:
    """Torch degrees -> radians (kept here so units change in one module).

    Args:
        x: angles in degrees, any shape.

    Returns:
        The same angles in radians, same shape and dtype.
    """
    return x * (np.pi / 180.0)
