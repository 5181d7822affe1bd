"""NetCDF output of lon/lat grids (geocsp.viz.raster.write_netcdf / write_grid), read back two ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.io import netcdf_file

from geocsp.cli.main import cli
from geocsp.errors import ConfigError
from geocsp.landmask import land_cells
from geocsp.prior.prior import grid_centres
from geocsp.viz.maps import grid_extent
from geocsp.viz.raster import NODATA, is_raster, netcdf_names, write_grid

BBOX = (-12.0, 34.0, 8.0, 46.0)  # Iberia: land and sea


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lons, lats = grid_centres(0.5, BBOX)
    lon2, lat2 = np.meshgrid(lons, lats)
    bands = np.stack([lon2 / 100 + lat2 / 1000, np.cos(np.radians(lat2))], axis=2)
    mask = land_cells(bands.shape, grid_extent(lats, lons))
    return lons, lats, bands, mask


def test_netcdf_round_trip_cf_layout(tmp_path: Path) -> None:
    lons, lats, bands, mask = _grid()
    out = write_grid(tmp_path / "m.nc", bands, lons, lats, 0.5, ["Quercus robur", "Quercus-robur"], mask=mask,
                     tags={"run": "/x/run", "bands": '["a"]'})
    with netcdf_file(out, "r", mmap=False) as nc:
        assert nc.Conventions == b"CF-1.8" and nc.run == b"/x/run"
        assert np.allclose(nc.variables["lat"][:], lats) and np.allclose(nc.variables["lon"][:], lons)
        assert nc.variables["lat"].units == b"degrees_north"
        assert nc.variables["crs"].grid_mapping_name == b"latitude_longitude"
        for k, var in enumerate(["Quercus_robur", "Quercus_robur_2"]):
            v = nc.variables[var]
            assert v.dimensions == ("lat", "lon") and v.grid_mapping == b"crs" and v._FillValue == NODATA
            data = v[:].copy()
            assert np.allclose(data[mask], bands[:, :, k][mask], atol=1e-6)
            assert (data[~mask] == NODATA).all() and (~mask).any()
        assert nc.variables["Quercus_robur_2"].long_name == b"Quercus-robur"
    assert not list(tmp_path.glob(".*"))  # written atomically


def test_netcdf_read_by_gdal(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    with rasterio.Env() as env:
        if "netCDF" not in env.drivers():
            pytest.skip("GDAL without the netCDF driver")
    lons, lats, bands, mask = _grid()
    out = write_grid(tmp_path / "m.nc", bands, lons, lats, 0.5, ["a", "b"], mask=mask)
    with rasterio.open(f"NETCDF:{out}:b") as src:
        assert src.crs.to_epsg() == 4326 and src.nodata == NODATA
        xs, ys = rasterio.transform.xy(src.transform, [0, len(lats) - 1], [0, len(lons) - 1])
        assert np.allclose(xs, [lons[0], lons[-1]]) and np.allclose(ys, [lats[0], lats[-1]])
        assert np.allclose(src.read(1)[mask], bands[:, :, 1][mask], atol=1e-6)


def test_names_suffixes_and_shape_errors(tmp_path: Path) -> None:
    assert netcdf_names(["Quercus robur", "Quercus-robur", "1x", "lat", "é"]) == [
        "Quercus_robur", "Quercus_robur_2", "v_1x", "lat_2", "layer"]
    assert is_raster("a.NC") and is_raster("a.tif") and not is_raster("a.png")
    lons, lats, bands, _ = _grid()
    with pytest.raises(ConfigError, match="expected bands of shape"):
        write_grid(tmp_path / "m.nc", bands[:, :, :1], lons, lats, 0.5, ["a", "b"])
    with pytest.raises(ConfigError, match="expected a raster suffix"):
        write_grid(tmp_path / "m.png", bands, lons, lats, 0.5, ["a", "b"])
    assert not (tmp_path / "m.nc").exists()


def test_map_out_nc_matches_the_geotiff_values(tmp_path: Path) -> None:
    from tests.viz.webruns import CLASSES, make_prior_run

    from geocsp.checkpoints import load_prior

    run = make_prior_run(tmp_path / "run")
    r = CliRunner().invoke(cli, ["map", str(run), "--species", CLASSES[0], "--species", CLASSES[2],
                                 "--region", "-12,34,8,46", "--res", "1", "--out", str(tmp_path / "m.nc")])
    assert r.exit_code == 0, r.output
    lons, lats = grid_centres(1.0, BBOX)
    lon2, lat2 = np.meshgrid(lons, lats)
    probs = load_prior(run).probs(np.c_[lon2.ravel(), lat2.ravel()]).detach().numpy()
    mask = land_cells((len(lats), len(lons)), grid_extent(lats, lons))
    with netcdf_file(tmp_path / "m.nc", "r", mmap=False) as nc:
        assert nc.kind == b"geoprior" and nc.variables["Fagus_sylvatica"].long_name == b"Fagus sylvatica"
        got = nc.variables["Fagus_sylvatica"][:].copy()
    want = probs[:, 2].reshape(len(lats), len(lons))
    assert np.abs(got[mask] - want[mask]).max() < 1e-5 and (got[~mask] == NODATA).all()
