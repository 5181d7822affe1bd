"""GeoTIFF output: the writer, and ``geocsp map --out X.tif`` for CSP prior and SDM runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from tests.export.conftest import CLASSES

from geocsp.checkpoints import load_prior
from geocsp.cli.main import cli
from geocsp.errors import ConfigError
from geocsp.landmask import is_land
from geocsp.prior.prior import grid_centres
from geocsp.viz.raster import NODATA, write_geotiff

rasterio = pytest.importorskip("rasterio")

REGION = "-12,34,8,46"  # Iberia: land, the Atlantic and the Mediterranean
BBOX = (-12.0, 34.0, 8.0, 46.0)


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _centres(src, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    xs, ys = rasterio.transform.xy(src.transform, rows, cols)
    return np.c_[xs, ys]


def test_writer_cog_layout_and_shape_errors(tmp_path: Path) -> None:
    lons, lats = grid_centres(0.5)
    bands = np.random.default_rng(0).random((len(lats), len(lons), 2))
    mask = np.ones((len(lats), len(lons)), bool)
    mask[:3] = False
    write_geotiff(tmp_path / "g.tif", bands, lons, lats, 0.5, ["a", "b"], mask=mask, tags={"k": 1},
                  cog_min_side=512)
    with rasterio.open(tmp_path / "g.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.overviews(1)
        assert src.block_shapes[0] == (256, 256) and src.descriptions == ("a", "b")
        assert src.tags()["k"] == "1" and src.nodata == NODATA and src.dtypes == ("float32", "float32")
        data = src.read()
    assert (data[:, :3] == NODATA).all()
    np.testing.assert_allclose(data[:, 3:], bands.transpose(2, 0, 1)[:, 3:], atol=1e-7)
    write_geotiff(tmp_path / "small.tif", bands, lons, lats, 0.5, ["a", "b"])  # 720 x 360: plain GeoTIFF
    with rasterio.open(tmp_path / "small.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG"
    with pytest.raises(ConfigError, match=r"expected bands of shape \(360, 720, 1\)"):
        write_geotiff(tmp_path / "bad.tif", bands, lons, lats, 0.5, ["a"])
    assert not (tmp_path / "bad.tif").exists()


def test_prior_map_tif_matches_probs(prior_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "range.tif"
    r = run("map", prior_run, "--species", CLASSES[2], "--species", CLASSES[0], "--region", REGION,
            "--res", "0.5", "--out", out)
    assert r.exit_code == 0, r.output
    lons, lats = grid_centres(0.5, BBOX)
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 4326 and src.count == 2 and src.shape == (len(lats), len(lons))
        assert src.descriptions == (CLASSES[2], CLASSES[0]) and src.nodata == NODATA
        rows, cols = np.arange(len(lats)), np.arange(len(lons))
        np.testing.assert_allclose(_centres(src, np.zeros_like(cols), cols)[:, 0], lons, atol=1e-9)
        np.testing.assert_allclose(_centres(src, rows, np.zeros_like(rows))[:, 1], lats, atol=1e-9)
        tags = src.tags()
        data = src.read()
    assert tags["kind"] == "geoprior" and json.loads(tags["bands"]) == [CLASSES[2], CLASSES[0]]
    assert tags["run"] == str(prior_run.resolve()) and tags["geocsp_version"]
    lon2, lat2 = np.meshgrid(lons, lats)
    pts = np.c_[lon2.ravel(), lat2.ravel()]
    land = is_land(pts).reshape(lon2.shape)
    assert land.any() and (~land).any()
    assert (data[:, ~land] == NODATA).all() and (data[:, land] != NODATA).all()
    with torch.no_grad():
        probs = load_prior(prior_run).probs(torch.as_tensor(pts, dtype=torch.float32)).numpy()
    expect = probs[:, [2, 0]].T.reshape(2, *lon2.shape)
    np.testing.assert_allclose(data[:, land], expect[:, land], atol=1e-6)

    r = run("map", prior_run, "--richness", "--region", REGION, "--res", "0.5", "--out", tmp_path / "rich.tiff")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "rich.tiff") as src:
        assert src.count == 1 and src.descriptions == ("species richness",)
        rich = src.read(1)
    np.testing.assert_allclose(rich[land], probs.sum(1).reshape(lon2.shape)[land], atol=1e-5)


def test_bad_suffix_and_several_species_for_an_image(prior_run: Path, tmp_path: Path) -> None:
    r = run("map", prior_run, "--species", CLASSES[0], "--out", tmp_path / "m.xyz")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "unsupported suffix '.xyz'" in r.output and ".tif" in r.output
    r = run("map", prior_run, "--species", CLASSES[0], "--species", CLASSES[1], "--out", tmp_path / "m.png")
    assert r.exit_code == 2 and "write a .tif or .nc for one band each" in r.output
    assert list(tmp_path.iterdir()) == []


def test_sdm_map_tif_matches_sdm_predict(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rec = pd.DataFrame({"species": ["a"] * 60 + ["b"] * 60,
                        "lon": np.r_[rng.uniform(2, 8, 60), rng.uniform(12, 18, 60)],
                        "lat": np.r_[rng.uniform(8, 14, 60), rng.uniform(4, 10, 60)]})
    rec.to_csv(tmp_path / "rec.csv", index=False)
    fit = ["--species-col", "species", "--background-sample", "200", "--background-sampler", "sphere",
           "--region", "0,0,20,20", "--epochs", "1", "--seed", "0", "--device", "cpu", "--encoder", "wrap"]
    r = run("sdm", "fit", tmp_path / "rec.csv", *fit, "--out", tmp_path / "sdm")
    assert r.exit_code == 0, r.output
    r = run("map", tmp_path / "sdm", "--species", "b", "--region", "0,0,20,20", "--res", "1",
            "--out", tmp_path / "b.tif")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "b.tif") as src:
        assert src.descriptions == ("b",) and src.tags()["kind"] == "sdm"
        data = src.read(1)
        rows, cols = np.array([2, 10, 15, 19, 18]), np.array([15, 5, 12, 3, 1])
        sites = _centres(src, rows, cols)
    land = is_land(sites)
    assert land.any() and (~land).any()  # the Gulf of Guinea is in the box
    assert (data[rows[~land], cols[~land]] == NODATA).all()
    pd.DataFrame({"lon": sites[:, 0], "lat": sites[:, 1]}).to_csv(tmp_path / "sites.csv", index=False)
    r = run("sdm", "predict", tmp_path / "sdm", tmp_path / "sites.csv", "--wide", "--out", tmp_path / "p.csv")
    assert r.exit_code == 0, r.output
    want = pd.read_csv(tmp_path / "p.csv")["b"].to_numpy()
    np.testing.assert_allclose(data[rows[land], cols[land]], want[land], atol=1e-6)


def test_a_failed_geotiff_write_names_the_output_and_leaves_nothing(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that GDAL refuses (a full disk: "Write failed. See previous exception") is an OSError
    naming the path asked for, not the hidden temporary, and nothing is left there; what libtiff
    printed to the C stderr on the way is not shown (the caller reports the failure in one line)."""
    import geocsp.viz.raster as raster

    def full(*_a: object, **_k: object) -> None:
        os.write(2, b"_tiffWriteProc: No space left on device.\n")  # as libtiff does, below Python
        try:
            raise OSError(28, "No space left on device")
        except OSError as cause:
            raise rasterio.errors.RasterioIOError("Write failed. See previous exception for details.") from cause

    monkeypatch.setattr(raster, "_fill", full)
    lons, lats = np.array([0.25, 0.75]), np.array([0.75, 0.25])
    with pytest.raises(OSError) as info:
        write_geotiff(tmp_path / "m.tif", np.zeros((2, 2, 1), np.float32), lons, lats, 0.5, ["a"])
    assert info.value.filename == str(tmp_path / "m.tif")
    assert "cannot write the GeoTIFF" in str(info.value) and "No space left on device" in str(info.value)
    assert list(tmp_path.iterdir()) == []
    assert "_tiffWriteProc" not in capfd.readouterr().err


def test_what_a_successful_geotiff_write_prints_to_the_c_stderr_still_shows(tmp_path: Path, capfd: pytest.CaptureFixture,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import geocsp.viz.raster as raster

    fill = raster._fill

    def warn_then_fill(*args: object, **kw: object) -> None:
        os.write(2, b"a GDAL warning\n")
        fill(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(raster, "_fill", warn_then_fill)
    lons, lats = np.array([0.25, 0.75]), np.array([0.75, 0.25])
    write_geotiff(tmp_path / "m.tif", np.zeros((2, 2, 1), np.float32), lons, lats, 0.5, ["a"])
    assert capfd.readouterr().err == "a GDAL warning\n" and (tmp_path / "m.tif").is_file()


def test_geotiff_writes_from_other_threads_leave_the_process_stderr_alone(tmp_path: Path,
                                                                          capfd: pytest.CaptureFixture) -> None:
    """fd 2 is the process's: only the main thread holds it, so overlapping writes cannot swap it."""
    import threading

    lons, lats = np.array([0.25, 0.75]), np.array([0.75, 0.25])
    threads = [threading.Thread(target=write_geotiff, args=(tmp_path / f"m{i}.tif", np.zeros((2, 2, 1), np.float32),
                                                             lons, lats, 0.5, ["a"])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(2, b"still here\n")
    assert capfd.readouterr().err.endswith("still here\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m0.tif", "m1.tif", "m2.tif", "m3.tif"]
