"""Environmental covariates: sampling rasters at points and standardising columns.

Rasters are read with rasterio (GeoTIFF and every other GDAL format, including the R
``raster`` ``.grd/.gri`` pairs). Points are (lon, lat) degrees (EPSG:4326); a raster in
another CRS gets the points reprojected into its CRS before sampling.

Rules (documented in the README):

* a point outside a raster's extent, or on a nodata cell, gets NaN for that covariate;
  callers decide to drop such rows (fitting) or to refuse them (prediction);
* a raster without a CRS is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.errors import DatasetError, MissingDependencyError, MissingFileError, gdal_reason

_WHOLE_READ_CELLS = 64_000_000  # read the whole band when it is at most this many cells


def _rasterio() -> Any:
    try:
        import rasterio
    except ImportError:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "reading rasters needs rasterio: pip install rasterio (or pip install 'geocsp[sdm]')"
        ) from None
    return rasterio


def covariate_name(path: str | Path) -> str:
    """Covariate name for a raster file: its stem (``bio1.grd`` -> ``bio1``)."""
    return Path(path).stem


@dataclass(frozen=True)
class RasterInfo:
    """Metadata of one raster layer: path, name, CRS string, bounds (left, bottom, right, top)."""

    path: str
    name: str
    crs: str
    bounds: tuple[float, float, float, float]


def open_raster(path: str | Path) -> Any:
    """Open a raster with rasterio (a context manager).

    Raises:
        MissingFileError: when the file is missing.
        DatasetError: when rasterio cannot read it.
        MissingDependencyError: without rasterio.
    """
    rasterio = _rasterio()
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{p}: raster file not found")
    try:
        return rasterio.open(p)
    except Exception as e:  # rasterio raises RasterioIOError and friends
        raise DatasetError(f"{p}: cannot read raster ({type(e).__name__}: {e})") from None


def is_lonlat_crs(crs: Any) -> bool:
    """Whether a rasterio CRS is geographic lon/lat (EPSG:4326 / OGC:CRS84)."""
    s = crs.to_string().upper()
    return s in ("EPSG:4326", "OGC:CRS84") or crs.to_epsg() == 4326


def raster_info(path: str | Path) -> RasterInfo:
    """Open a raster and return its metadata.

    Raises:
        MissingFileError: when the file is missing.
        DatasetError: when it cannot be read or has no CRS.
    """
    with open_raster(path) as src:
        if src.crs is None:
            raise DatasetError(f"{path}: raster has no CRS; expected EPSG:4326 or a defined projection")
        b = src.bounds
        return RasterInfo(str(path), covariate_name(path), src.crs.to_string(), (b.left, b.bottom, b.right, b.top))


def sample_raster(path: str | Path, lonlat: np.ndarray, band: int = 1) -> np.ndarray:
    """Sample one raster band at (N, 2) lon/lat degrees (nearest cell).

    Returns:
        (N,) float64 values; NaN outside the extent or on nodata cells.

    Raises:
        MissingFileError, DatasetError: unreadable raster or missing CRS.
    """
    lonlat = np.asarray(lonlat, dtype=np.float64)
    with open_raster(path) as src:
        if src.crs is None:
            raise DatasetError(f"{path}: raster has no CRS; expected EPSG:4326 or a defined projection")
        xs, ys = lonlat[:, 0], lonlat[:, 1]
        if not is_lonlat_crs(src.crs):
            from rasterio.warp import transform

            xs, ys = (np.asarray(v) for v in transform("EPSG:4326", src.crs, xs.tolist(), ys.tolist()))
        inv = ~src.transform
        cols = inv.a * xs + inv.b * ys + inv.c
        rows = inv.d * xs + inv.e * ys + inv.f
        rows = np.floor(np.asarray(rows)).astype(np.int64)
        cols = np.floor(np.asarray(cols)).astype(np.int64)
        inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
        inside &= np.isfinite(xs) & np.isfinite(ys)
        out = np.full(len(lonlat), np.nan)
        if not inside.any():
            return out
        try:  # a truncated or corrupt data file fails here, not at open
            if src.height * src.width <= _WHOLE_READ_CELLS:
                data = src.read(band, masked=True)
                vals = data[rows[inside], cols[inside]]
            else:  # large raster: read only the window around the points
                from rasterio.windows import Window

                r0, r1 = rows[inside].min(), rows[inside].max() + 1
                c0, c1 = cols[inside].min(), cols[inside].max() + 1
                data = src.read(band, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
                vals = data[rows[inside] - r0, cols[inside] - c0]
        except Exception as e:  # rasterio's RasterioIOError and friends
            detail = gdal_reason(e)
            files = ", ".join(sorted({Path(f).name for f in (src.files or [path])}))
            raise DatasetError(f"{path}: cannot read band {band} of the raster ({files}): {detail}; "
                               f"the file may be truncated or corrupt") from None
        mask = np.ma.getmaskarray(vals)
        vals = np.asarray(np.ma.getdata(vals), dtype=np.float64)  # int rasters: no NaN fill in-type
        vals[mask] = np.nan
        nodata = src.nodatavals[band - 1]
        if nodata is not None and np.isfinite(nodata):
            vals[vals == nodata] = np.nan
        out[inside] = vals
        return out


def sample_rasters(paths: Sequence[str | Path], lonlat: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Sample several rasters: returns ((N, K) float64 with NaN where missing, names).

    Raises:
        DatasetError: when two rasters share a name (stem).
    """
    names = [covariate_name(p) for p in paths]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DatasetError(f"two rasters share the covariate name '{sorted(dup)[0]}'; rename one file")
    cols = [sample_raster(p, lonlat) for p in paths]
    return (np.stack(cols, axis=1) if cols else np.zeros((len(lonlat), 0))), names


@dataclass(frozen=True)
class Standardizer:
    """Per-covariate mean/std computed on fitting data and stored with the model.

    Args:
        names: covariate names, in column order.
        mean: (K,) means.
        std: (K,) standard deviations (a constant column gets std 1).
    """

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, names: list[str], values: np.ndarray) -> Standardizer:
        """Fit on (N, K) values (NaN ignored)."""
        mean = np.nanmean(values, axis=0) if len(values) else np.zeros(len(names))
        std = np.nanstd(values, axis=0) if len(values) else np.ones(len(names))
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return cls(tuple(names), tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(N, K) raw -> (N, K) standardised float32."""
        return ((values - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)
