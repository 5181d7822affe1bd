"""GeoTIFF (and NetCDF) output of lon/lat grids (EPSG:4326) for GIS tools (docs/export.md).

A grid is what :meth:`geocsp.prior.GeoPrior.predict_grid` and the SDM maps produce: values
at the cell centres of :func:`geocsp.prior.prior.grid_centres`, row 0 northernmost. The file
has one float32 band per layer (band description = layer name), :data:`NODATA` where the
mask is False (the ocean, for maps) and the caller's provenance in its dataset tags. A grid
with a side over :data:`COG_MIN_SIDE` cells is written as a Cloud-Optimized GeoTIFF (GDAL's
COG driver: 256 x 256 tiles, DEFLATE, overviews); smaller ones as a plain GeoTIFF. The file
appears complete or not at all (written beside the target and renamed). rasterio is an
optional extra (``pip install geocsp[raster]``), imported inside the functions.

:func:`write_netcdf` writes the same grid as CF-1.8 NetCDF (classic format, through
``scipy.io.netcdf_file``: no extra dependency): ``lat``/``lon`` coordinate variables, one
float32 variable per layer (``long_name`` = layer name), ``_FillValue`` :data:`NODATA`, a
``crs`` grid-mapping variable and the provenance as global attributes. :func:`write_grid`
picks the writer from the suffix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import netcdf_file

from geocsp import __version__
from geocsp.errors import ConfigError, MissingDependencyError, gdal_reason
from geocsp.io import atomic_path

NODATA = -9999.0
"""Value of masked (ocean) cells; also recorded as the file's nodata value."""
COG_MIN_SIDE = 1024
"""Grids with more cells than this along either side are written Cloud-Optimized."""
TILE = 256
"""Tile side (cells) of Cloud-Optimized output."""
TIFF_SUFFIXES = (".tif", ".tiff")
"""Output suffixes that mean a GeoTIFF."""
NETCDF_SUFFIXES = (".nc",)
"""Output suffixes that mean NetCDF."""
RASTER_SUFFIXES = TIFF_SUFFIXES + NETCDF_SUFFIXES
"""Output suffixes :func:`write_grid` writes."""
WGS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
             'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
             '0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
             'AUTHORITY["EPSG","4326"]]')
"""EPSG:4326 as WKT, the NetCDF ``crs`` variable's ``crs_wkt`` / ``spatial_ref``."""


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
    h, w = len(lats), len(lons)
    data = _masked(path, bands, lons, lats, names, mask).transpose(2, 0, 1)
    profile = {"driver": "GTiff", "height": h, "width": w, "count": len(names), "dtype": "float32",
               "crs": "EPSG:4326", "transform": grid_transform(lons, lats, res_deg), "nodata": NODATA}
    cog = max(h, w) > cog_min_side
    out = Path(path)
    with atomic_path(out) as tmp, _held_stderr():
        try:
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
        except rasterio.errors.RasterioError as e:  # e.g. "Write failed. See previous exception": name --out
            raise OSError(errno.EIO, f"cannot write the GeoTIFF ({gdal_reason(e)})", str(out)) from None
    return out


@contextlib.contextmanager
def _held_stderr() -> Iterator[None]:
    """Hold what is written to file descriptor 2 in the block; pass it on unless the block raises.

    libtiff prints its own lines (``_tiffWriteProc: No space left on device.``) straight to the
    C stderr before rasterio raises; the failure is then reported once, as one line, by the
    caller (GDAL's reason is in it). fd 2 is the whole process's: only the main thread holds it
    (other threads' writes go through unchanged), and nothing is held without a temporary file
    (a full ``/tmp``). Passing the text on never fails the write (a closed stderr is ignored).
    """
    held = None
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(OSError):
            held = tempfile.TemporaryFile()
    if held is None:
        yield
        return
    with held:
        try:
            saved = os.dup(2)
        except OSError:
            saved = -1
        if saved < 0:
            yield
            return
        failed = True
        try:
            sys.stderr.flush()
            os.dup2(held.fileno(), 2)
            yield
            failed = False
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not failed:
                held.seek(0)
                text = held.read()
                with contextlib.suppress(OSError):
                    while text:
                        text = text[os.write(2, text):]


def _fill(dst: Any, data: np.ndarray, names: Sequence[str], tags: Mapping[str, Any] | None) -> None:
    """Write the (K, H, W) ``data``, band descriptions and dataset tags into an open dataset."""
    dst.write(data)
    for i, name in enumerate(names, start=1):
        dst.set_band_description(i, str(name))
    if tags:
        dst.update_tags(**{str(k): str(v) for k, v in tags.items()})


def is_raster(path: str | Path) -> bool:
    """Whether ``path`` names a raster :func:`write_grid` writes (GeoTIFF or NetCDF suffix).

    Args:
        path: an output path.

    Returns:
        True for ``.tif`` / ``.tiff`` / ``.nc`` (any case).
    """
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def _masked(path: str | Path, bands: np.ndarray, lons: np.ndarray, lats: np.ndarray, names: Sequence[str],
            mask: np.ndarray | None) -> np.ndarray:
    """(H, W, K) float32 with :data:`NODATA` where masked or non-finite; shapes checked."""
    data = np.asarray(bands, dtype=np.float32)
    h, w = len(lats), len(lons)
    if data.ndim != 3 or data.shape[:2] != (h, w) or data.shape[2] != len(names):
        raise ConfigError(f"{path}: expected bands of shape ({h}, {w}, {len(names)}), got {data.shape}")
    keep = np.isfinite(data)
    if mask is not None:
        if mask.shape != (h, w):
            raise ConfigError(f"{path}: expected a land mask of shape ({h}, {w}), got {mask.shape}")
        keep &= mask.astype(bool)[:, :, None]
    return np.where(keep, data, np.float32(NODATA))


def netcdf_names(names: Sequence[str]) -> list[str]:
    """NetCDF variable names for layer names: ``[A-Za-z0-9_]``, starting with a letter, unique.

    Args:
        names: layer names (e.g. species).

    Returns:
        One variable name per layer (``Quercus robur`` -> ``Quercus_robur``; clashes get ``_2``...).

    >>> netcdf_names(["Quercus robur", "Quercus-robur", "1x", "lat"])
    ['Quercus_robur', 'Quercus_robur_2', 'v_1x', 'lat_2']
    """
    out: list[str] = []
    taken = {"lat", "lon", "crs"}
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "layer"
        base = base if base[0].isalpha() else f"v_{base}"
        var, i = base, 1
        while var in taken:
            i += 1
            var = f"{base}_{i}"
        taken.add(var)
        out.append(var)
    return out


def write_netcdf(
    path: str | Path,
    bands: np.ndarray,
    lons: np.ndarray,
    lats: np.ndarray,
    res_deg: float,
    names: Sequence[str],
    *,
    mask: np.ndarray | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Path:
    """Write a lon/lat grid as CF-1.8 NetCDF (classic format), atomically.

    Args:
        path: the ``.nc`` file to write.
        bands: (H, W, K) values at the cell centres, row 0 northernmost.
        lons: (W,) cell-centre longitudes, degrees, west to east.
        lats: (H,) cell-centre latitudes, degrees, north to south.
        res_deg: cell size in degrees (recorded as the ``geospatial_*_resolution`` attributes).
        names: K layer names; variables are named by :func:`netcdf_names`, ``long_name`` = name.
        mask: (H, W) bool, True = keep; False cells (and non-finite values) become
            :data:`NODATA` (the variables' ``_FillValue``).
        tags: global attributes (provenance); values are written as strings.

    Returns:
        ``path`` as a Path.

    Raises:
        ConfigError: when the shapes of ``bands``, ``lons``, ``lats``, ``names`` or ``mask``
            disagree.
    """
    data = _masked(path, bands, lons, lats, names, mask)
    out = Path(path)
    with atomic_path(out) as tmp, netcdf_file(tmp, "w", version=2) as nc:
        nc.Conventions = "CF-1.8"
        nc.source = f"geocsp {__version__}"
        nc.geospatial_lat_resolution = nc.geospatial_lon_resolution = f"{res_deg} degrees"
        for key, value in (tags or {}).items():
            setattr(nc, re.sub(r"[^A-Za-z0-9_]", "_", str(key)), str(value))
        nc.createDimension("lat", len(lats))
        nc.createDimension("lon", len(lons))
        for dim, values, units, axis in (("lat", lats, "degrees_north", "Y"), ("lon", lons, "degrees_east", "X")):
            var = nc.createVariable(dim, "f8", (dim,))
            var[:] = np.asarray(values, dtype=np.float64)
            var.units, var.standard_name, var.axis = units, "latitude" if dim == "lat" else "longitude", axis
        crs = nc.createVariable("crs", "i4", ())
        crs.grid_mapping_name = "latitude_longitude"
        crs.semi_major_axis, crs.inverse_flattening = 6378137.0, 298.257223563
        crs.longitude_of_prime_meridian = 0.0
        crs.crs_wkt = crs.spatial_ref = WGS84_WKT
        for k, (var_name, name) in enumerate(zip(netcdf_names(names), names, strict=True)):
            var = nc.createVariable(var_name, "f4", ("lat", "lon"))
            var._FillValue = np.float32(NODATA)
            var[:] = data[:, :, k]
            var.long_name, var.grid_mapping, var.units = str(name), "crs", "1"
    return out


def write_grid(path: str | Path, bands: np.ndarray, lons: np.ndarray, lats: np.ndarray, res_deg: float,
               names: Sequence[str], *, mask: np.ndarray | None = None,
               tags: Mapping[str, Any] | None = None) -> Path:
    """Write a lon/lat grid as GeoTIFF (``.tif`` / ``.tiff``) or NetCDF (``.nc``), by suffix.

    Args:
        path: the file to write.
        bands: (H, W, K) values at the cell centres, row 0 northernmost.
        lons: (W,) cell-centre longitudes, degrees.
        lats: (H,) cell-centre latitudes, degrees.
        res_deg: cell size in degrees.
        names: K layer names.
        mask: (H, W) bool, True = keep; None keeps every finite cell.
        tags: provenance.

    Returns:
        ``path`` as a Path.

    Raises:
        ConfigError: an unsupported suffix or shapes that disagree.
        MissingDependencyError: rasterio is not installed (GeoTIFF).
    """
    if is_geotiff(path):
        return write_geotiff(path, bands, lons, lats, res_deg, names, mask=mask, tags=tags)
    if Path(path).suffix.lower() in NETCDF_SUFFIXES:
        return write_netcdf(path, bands, lons, lats, res_deg, names, mask=mask, tags=tags)
    raise ConfigError(f"{path}: expected a raster suffix ({', '.join(RASTER_SUFFIXES)})")
