"""Raster sampling (GeoTIFFs written here, EPSG:4326 and EPSG:3857) and the Standardizer."""

from __future__ import annotations

import numpy as np
import pytest

from geocsp.errors import DatasetError
from geocsp.sdm.covariates import Standardizer, sample_raster, sample_rasters

rasterio = pytest.importorskip("rasterio")


def write_lonlat_tif(path, nodata_cell=(0, 0)) -> np.ndarray:
    """A 10 x 20 int16 raster over lon 0..20, lat 0..10 (1 degree cells), value = 100*row + col."""
    from rasterio.transform import from_origin

    data = (100 * np.arange(10)[:, None] + np.arange(20)[None, :]).astype(np.int16)
    data[nodata_cell] = -9999
    with rasterio.open(path, "w", driver="GTiff", height=10, width=20, count=1, dtype="int16",
                       crs="EPSG:4326", transform=from_origin(0, 10, 1, 1), nodata=-9999) as dst:
        dst.write(data, 1)
    return data


def test_lonlat_raster_values_nodata_and_outside(tmp_path) -> None:
    p = tmp_path / "a.tif"
    write_lonlat_tif(p)
    pts = np.array([[3.5, 8.5], [19.9, 0.1], [0.5, 9.5], [25.0, 5.0], [5.0, -1.0]])
    v = sample_raster(p, pts)
    # row = floor(10 - lat), col = floor(lon)
    assert v[:2].tolist() == [100 * 1 + 3, 100 * 9 + 19]
    assert np.isnan(v[2:]).all()  # nodata cell, east of extent, south of extent


def test_projected_raster_points_are_reprojected(tmp_path) -> None:
    from rasterio.transform import from_origin

    # EPSG:3857 raster, 10 km cells, origin at x=0, y=2,000 km; value = col index
    r = 6378137.0
    data = np.tile(np.arange(50, dtype=np.float32), (200, 1))
    p = tmp_path / "m.tif"
    with rasterio.open(p, "w", driver="GTiff", height=200, width=50, count=1, dtype="float32",
                       crs="EPSG:3857", transform=from_origin(0, 2e6, 1e4, 1e4)) as dst:
        dst.write(data, 1)
    lon = np.array([0.5, 2.0, 4.0])
    lat = np.array([1.0, 5.0, 10.0])
    v = sample_raster(p, np.stack([lon, lat], 1))
    x = r * np.radians(lon)  # independent spherical-Mercator formula
    assert v.tolist() == np.floor(x / 1e4).tolist()
    assert np.isnan(sample_raster(p, np.array([[-1.0, 5.0]])))[0]


def test_sample_rasters_names_and_duplicates(tmp_path) -> None:
    write_lonlat_tif(tmp_path / "a.tif")
    (tmp_path / "b").mkdir()
    write_lonlat_tif(tmp_path / "b" / "a.tif")
    vals, names = sample_rasters([tmp_path / "a.tif"], np.array([[1.5, 1.5]]))
    assert names == ["a"] and vals.shape == (1, 1)
    with pytest.raises(DatasetError, match="share the covariate name 'a'"):
        sample_rasters([tmp_path / "a.tif", tmp_path / "b" / "a.tif"], np.array([[1.5, 1.5]]))


def test_standardizer_round_trip_and_constant_column() -> None:
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(5, 2, 100), np.full(100, 3.0)]
    x[3, 0] = np.nan
    st = Standardizer.fit(["a", "b"], x)
    z = st.transform(x)
    ref_mean = np.nanmean(x[:, 0])
    ref_std = np.sqrt(np.nanmean((x[:, 0] - ref_mean) ** 2))
    assert st.mean[0] == pytest.approx(ref_mean) and st.std[0] == pytest.approx(ref_std)
    assert st.std[1] == 1.0 and np.allclose(z[:, 1], 0.0)
    back = z[:, 0].astype(np.float64) * st.std[0] + st.mean[0]
    assert np.allclose(back[~np.isnan(x[:, 0])], x[~np.isnan(x[:, 0]), 0], atol=1e-5)
    again = Standardizer(tuple(st.names), tuple(st.mean), tuple(st.std))
    assert np.array_equal(again.transform(x), z, equal_nan=True)


def test_a_raster_whose_data_file_is_cut_names_the_raster(tmp_path) -> None:
    """An ESRI .grd/.gri pair whose .gri data is truncated opens fine and fails on read: the
    message names the raster files (it used to name the run's output folder)."""
    from rasterio.transform import from_origin

    p = tmp_path / "bio1.grd"
    data = np.arange(200 * 100, dtype=np.float32).reshape(200, 100)
    with rasterio.open(p, "w", driver="RRASTER", height=200, width=100, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(0, 20, 0.1, 0.1)) as dst:
        dst.write(data, 1)
    gri = tmp_path / "bio1.gri"
    gri.write_bytes(gri.read_bytes()[:1000])  # a copy cut short
    with pytest.raises(DatasetError, match=r"bio1\.grd: cannot read band 1 of the raster \(bio1\.grd, bio1\.gri\): "
                                           r".*the file may be truncated or corrupt$"):
        sample_raster(p, np.array([[5.0, 10.0], [9.0, 1.0]]))
