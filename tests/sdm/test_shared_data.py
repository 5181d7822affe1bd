"""Bradypus with the real bioclim .grd rasters (shared data), and a CSP prior map."""

from __future__ import annotations

import json

import pytest
import torch

from .test_cli import FAST, run


def test_bradypus_rasters_fit_predict_map(shared_data, tmp_path) -> None:
    pytest.importorskip("rasterio")
    d = shared_data / "dismo_bradypus_bioclim"
    rasters = ",".join(str(d / f"bio{i}.grd") for i in (1, 12, 16))
    out = tmp_path / "brad"
    r = run("sdm", "fit", d / "bradypus.csv", "--species-col", "species", "--rasters", rasters,
            "--background-sample", "400", "--background-sampler", "sphere", "--cv-folds", "2",
            "--block-deg", "10", *FAST, "--out", out)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_presences"] == 116 and m["n_background"] == 400
    assert m["cv"]["logistic"]["mean_auc"] > 0.6  # bioclim separates the sloth from background
    (tmp_path / "s.csv").write_text("lon,lat\n-60,-5\n-10,0\n")  # second site: Atlantic, outside extent
    r = run("sdm", "predict", out, tmp_path / "s.csv", "--out", tmp_path / "p.csv")
    assert r.exit_code == 2 and ":1:bio1: covariate is missing" in r.output
    r = run("map", out, "--species", "Bradypus variegatus", "--res", "2", "--no-land-mask", "--out", tmp_path / "b.png")
    assert r.exit_code == 0, r.output


def test_map_of_a_csp_prior_run(tmp_path) -> None:
    from geocsp.nets import LocationEncoder, LocationEncoderConfig
    from geocsp.prior import GeoPrior

    enc = LocationEncoder(LocationEncoderConfig(encoder="wrap", network="fcnet", dim=8))
    GeoPrior(enc, torch.randn(3, 8), ["a", "b", "c"]).save_pretrained(tmp_path / "run" / "prior")
    r = run("map", tmp_path / "run", "--species", "b", "--res", "10", "--no-land-mask", "--out", tmp_path / "p.png")
    assert r.exit_code == 0, r.output
    r = run("map", tmp_path / "run", "--richness", "--res", "10", "--no-land-mask", "--out", tmp_path / "q.png")
    assert r.exit_code == 0, r.output
    r = run("map", tmp_path, "--species", "b", "--out", tmp_path / "z.png")
    assert r.exit_code == 2 and "neither an SDM run" in r.output
