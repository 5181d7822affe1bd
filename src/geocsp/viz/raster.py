"""GeoTIFF output of lon/lat grids (EPSG:4326) for GIS tools (docs/export.md).

A grid is what :meth:`geocsp.prior.GeoPrior.predict_grid` and the SDM maps produce: values
at the cell centres of :func:`geocsp.prior.prior.grid_centres`, row 0 northernmost. The file
has one float32 band per layer (band description = layer name), :data:`NODATA` where the
mask is False (the ocean, for maps) and the caller's provenance in its dataset tags. A grid
with a side over :data:`COG_MIN_SIDE` cells is written as a Cloud-Optimized GeoTIFF (GDAL's
COG driver: 256 x 256 tiles, DEFLATE, overviews); smaller ones as a plain GeoTIFF. The file
appears complete or not at all (written beside the target and renamed). rasterio is an
optional extra (``pip install geocsp[raster]``), imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.errors import ConfigError, MissingDependencyError
from geocsp.io import atomic_path

NODATA = -9999.0
"""Value of masked (ocean) cells; also recorded as the file's nodata value."""
COG_MIN_SIDE = 1024
"""Grids with more cells than this along either side are written Cloud-Optimized."""
TILE = 256
"""Tile side (cells) of Cloud-Optimized output."""
TIFF_SUFFIXES = (".tif", ".tiff")
"""Output suffixes that mean a GeoTIFF."""


def is_geotiff(path: str | Path) -> bool:
    """Whether ``path`` names a GeoTIFF (suffix ``.tif`` / ``.tiff``, any case).

    Args:
        path: an output path.

    Returns:
        True for a GeoTIFF suffix.
    """
    return Path(path).suffix.lower() in TIFF_SUFFIXES


def _rasterio() -> Any:
    """The rasterio module, or a one-line MissingDependencyError."""
    try:
        import rasterio
        import rasterio.shutil
    except ImportError:
        raise MissingDependencyError("GeoTIFF output needs rasterio: pip install 'geocsp[raster]'") from None
    return rasterio


def grid_transform(lons: np.ndarray, lats: np.ndarray, res_deg: float) -> Any:
    """The affine transform whose cell centres are ``lons`` x ``lats``.

    Args:
        lons: (W,) cell-centre longitudes, west to east, degrees.
        lats: (H,) cell-centre latitudes, north to south, degrees.
        res_deg: cell size in degrees.

    Returns:
        A ``rasterio.Affine``: pixel (col, row) corner -> (lon, lat).
    """
    from rasterio import Affine

    return Affine(res_deg, 0.0, float(lons[0]) - res_deg / 2, 0.0, -res_deg, float(lats[0]) + res_deg / 2)


def write_geotiff(
    path: str | Path,
    bands: np.ndarray,
    lons: np.ndarray,
    lats: np.ndarray,
    res_deg: float,
    names: Sequence[str],
    *,
    mask: np.ndarray | None = None,
    tags: Mapping[str, Any] | None = None,
    cog_min_side: int = COG_MIN_SIDE,
) -> Path:
    """Write a lon/lat grid as a GeoTIFF in EPSG:4326, atomically.

    Args:
        path: the ``.tif`` / ``.tiff`` file to write.
        bands: (H, W, K) values at the cell centres, row 0 northernmost.
        lons: (W,) cell-centre longitudes, degrees, west to east.
        lats: (H,) cell-centre latitudes, degrees, north to south.
        res_deg: cell size in degrees.
        names: K band descriptions (e.g. species names).
        mask: (H, W) bool, True = keep; False cells (and non-finite values) become
            :data:`NODATA`. None keeps every finite cell.
        tags: dataset tags (provenance); values are written as strings.
        cog_min_side: grids larger than this along either side are Cloud-Optimized.

    Returns:
        ``path`` as a Path.

    Raises:
        ConfigError: when the shapes of ``bands``, ``lons``, ``lats``, ``names`` or ``mask``
            disagree.
        MissingDependencyError: rasterio is not installed.
    """
    rasterio = _rasterio()
    data = np.asarray(bands, dtype=np.float32)
    h, w = len(lats), len(lons)
    if data.ndim != 3 or data.shape[:2] != (h, w) or data.shape[2] != len(names):
        raise ConfigError(f"{path}: expected bands of shape ({h}, {w}, {len(names)}), got {data.shape}")
    keep = np.isfinite(data)
    if mask is not None:
        if mask.shape != (h, w):
            raise ConfigError(f"{path}: expected a land mask of shape ({h}, {w}), got {mask.shape}")
        keep &= mask.astype(bool)[:, :, None]
    data = np.where(keep, data, np.float32(NODATA)).transpose(2, 0, 1)
    profile = {"driver": "GTiff", "height": h, "width": w, "count": len(names), "dtype": "float32",
               "crs": "EPSG:4326", "transform": grid_transform(lons, lats, res_deg), "nodata": NODATA}
    cog = max(h, w) > cog_min_side
    out = Path(path)
    with atomic_path(out) as tmp:
        if not cog:
            with rasterio.open(tmp, "w", **profile, compress="deflate") as dst:
                _fill(dst, data, names, tags)
        else:
            with rasterio.MemoryFile() as mem:
                with mem.open(**profile, tiled=True, blockxsize=TILE, blockysize=TILE) as dst:
                    _fill(dst, data, names, tags)
                with mem.open() as src:
                    rasterio.shutil.copy(src, tmp, driver="COG", BLOCKSIZE=TILE, COMPRESS="DEFLATE",
                                         OVERVIEWS="AUTO", RESAMPLING="AVERAGE")
    return out


def _fill(dst: Any, data: np.ndarray, names: Sequence[str], tags: Mapping[str, Any] | None) -> None:
    """Write the (K, H, W) ``data``, band descriptions and dataset tags into an open dataset."""
    dst.write(data)
    for i, name in enumerate(names, start=1):
        dst.set_band_description(i, str(name))
    if tags:
        dst.update_tags(**{str(k): str(v) for k, v in tags.items()})
