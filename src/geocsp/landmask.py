"""The one land mask: ``global_land_mask``'s GLOBE 1 km grid, bit-packed and memory-mapped.

Used by the ``land`` location sampler, GeoWorld's ranges, SDM background sampling and the
land masking of maps. The package's 933 MB boolean grid is bit-packed once per machine into
the geocsp cache (117 MB, ``$GEOCSP_CACHE/land_mask``; ~5–15 s the first time), then every
process memory-maps it: a lookup costs a few page reads, with no 1 GB load. Lookups are
bit-exact with ``global_land_mask.globe.is_land`` (same grid, same index rounding); lakes
count as land, Antarctica as land.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geocsp.coords import xyz_to_lonlat
from geocsp.errors import MissingDependencyError
from geocsp.io import atomic_path, cache_dir

if TYPE_CHECKING:
    import torch

_LOCK = threading.Lock()
_GRID: dict[str, np.ndarray] = {}


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """(bits (21600, 5400) uint8 memmap, meta [lat0, dlat, lat_min, lat_max, lon0, dlon, lon_min, lon_max])."""
    with _LOCK:
        if "bits" not in _GRID:
            d = cache_dir() / "land_mask"
            bits_file, meta_file = d / "globe_land_bits.npy", d / "globe_land_meta.npy"
            if not (bits_file.is_file() and meta_file.is_file()):
                _build(bits_file, meta_file)
            _GRID["bits"] = np.load(bits_file, mmap_mode="r")
            _GRID["meta"] = np.load(meta_file)
    return _GRID["bits"], _GRID["meta"]


def _build(bits_file: Path, meta_file: Path) -> None:
    try:
        from global_land_mask import globe
    except ImportError:  # pragma: no cover - a declared dependency
        raise MissingDependencyError("the land mask needs global-land-mask: pip install global-land-mask") from None
    lat, lon = globe._lat, globe._lon
    meta = np.array([lat[0], lat[1] - lat[0], lat.min(), lat.max(), lon[0], lon[1] - lon[0], lon.min(), lon.max()])
    bits_file.parent.mkdir(parents=True, exist_ok=True)
    for path, arr in ((bits_file, np.packbits(~globe._mask, axis=1)), (meta_file, meta)):
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)


def is_land(lonlat: np.ndarray) -> np.ndarray:
    """(N,) bool, True where (N, 2) (lon, lat) degrees fall on land.

    Values outside [-180, 180] × [-90, 90] are clipped, as ``global_land_mask`` does.

    Args:
        lonlat: (N, 2) longitude, latitude in degrees.

    Returns:
        (N,) bool, True on land.

    >>> is_land(np.array([[11.88, 43.46], [-30.0, 0.0]])).tolist()
    [True, False]
    """
    bits, (lat0, dlat, lat_lo, lat_hi, lon0, dlon, lon_lo, lon_hi) = _grid()
    ll = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
    i = ((np.clip(ll[:, 1], lat_lo, lat_hi) - lat0) / dlat).astype(np.int64)
    j = ((np.clip(ll[:, 0], lon_lo, lon_hi) - lon0) / dlon).astype(np.int64)
    return ((bits[i, j >> 3] >> (7 - (j & 7))) & 1).astype(bool)


def is_land_xyz(xyz: np.ndarray) -> np.ndarray:
    """(N,) bool land test of (N, 3) unit vectors.

    Args:
        xyz: (N, 3) unit vectors (any norm > 0).

    Returns:
        (N,) bool, True on land.
    """
    return is_land(xyz_to_lonlat(xyz))


def is_land_tensor(lonlat: torch.Tensor) -> torch.Tensor:
    """(m,) bool land test of an (m, 2) degree tensor, on the tensor's device.

    Args:
        lonlat: (m, 2) longitude, latitude in degrees.

    Returns:
        (m,) bool tensor on ``lonlat.device``.
    """
    import torch

    mask = is_land(lonlat.detach().to("cpu", torch.float64).numpy())
    return torch.from_numpy(mask).to(lonlat.device)


def land_cells(shape: tuple[int, ...], extent: tuple[float, float, float, float]) -> np.ndarray:
    """(H, W) bool, True where the centre of each cell of a lon/lat grid is on land.

    Args:
        shape: (H, W, ...) grid shape; row 0 is the northern edge.
        extent: (min_lon, max_lon, min_lat, max_lat) degrees (matplotlib's imshow order).

    Returns:
        (H, W) bool land mask of the cell centres.
    """
    h, w = shape[:2]
    x0, x1, y0, y1 = extent
    lons = x0 + (x1 - x0) * (np.arange(w) + 0.5) / w
    lats = y1 - (y1 - y0) * (np.arange(h) + 0.5) / h
    lon2, lat2 = np.meshgrid(lons, lats)
    return is_land(np.stack([lon2.ravel(), lat2.ravel()], axis=1)).reshape(h, w)
