"""Preprocessing: bit-exact vs torchvision reference fixtures; odd modes; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from featutils import FIXTURES, write_rgb
from PIL import Image

from geocsp.errors import ConfigError, DatasetError
from geocsp.features.preprocess import PreprocessConfig, load_and_preprocess, load_image, preprocess

VERSIONS = json.loads((FIXTURES / "versions.json").read_text())


@pytest.mark.parametrize("model", sorted(VERSIONS["configs"]))
@pytest.mark.parametrize("image", ["wide.png", "tall.png", "square.png"])
def test_matches_torchvision_reference(model: str, image: str) -> None:
    cfg = PreprocessConfig(**VERSIONS["configs"][model])
    with np.load(FIXTURES / "preprocess_ref.npz", allow_pickle=False) as ref:
        expected = ref[f"{model}|{image}"]
    got, gps = load_and_preprocess(FIXTURES / "images" / image, cfg)
    assert gps is None and got.dtype == np.float32 and got.shape == (3, 32, 32)
    np.testing.assert_array_equal(got, expected)


def test_independent_numpy_formula() -> None:
    """Resize-free case (image already at the crop size): float64 normalisation by hand."""
    arr = np.random.default_rng(0).integers(0, 256, (20, 20, 3), np.uint8)
    cfg = PreprocessConfig(size=20, crop_pct=1.0, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    got = preprocess(Image.fromarray(arr), cfg)
    ref = (arr / 255.0 - np.array([0.1, 0.2, 0.3])) / np.array([0.5, 0.25, 2.0])
    np.testing.assert_allclose(got, ref.transpose(2, 0, 1), rtol=0, atol=1e-6)


def test_resize_and_crop_geometry() -> None:
    """A 100x50 image, size 20, crop_pct 0.5: shorter side -> 40, long side 80, crop centre."""
    arr = np.zeros((50, 100, 3), np.uint8)
    arr[:, 50:] = 255  # right half white: centre crop straddles the edge
    cfg = PreprocessConfig(size=20, crop_pct=0.5, interpolation="nearest", mean=(0, 0, 0), std=(1, 1, 1))
    got = preprocess(Image.fromarray(arr), cfg)
    assert got.shape == (3, 20, 20)
    np.testing.assert_array_equal(got[0, :, :10], 0.0)
    np.testing.assert_array_equal(got[0, :, 10:], 1.0)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_odd_modes(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (24, 32, 3), np.uint8)
    base = Image.fromarray(rgb)
    cfg = PreprocessConfig(size=16, crop_pct=1.0)
    cmyk = _save(base.convert("CMYK"), tmp_path / "cmyk.jpg")
    rgba = _save(base.convert("RGBA"), tmp_path / "rgba.png")
    pal = _save(base.convert("P"), tmp_path / "pal.png")
    g16 = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 85)
    png16 = _save(Image.fromarray(g16), tmp_path / "g16.png")
    with Image.open(png16) as im:
        assert im.mode.startswith("I")  # really a 16-bit PNG
    for p in (cmyk, rgba, pal, png16):
        img, _ = load_image(p)
        assert img.mode == "RGB" and img.size == (32, 24)
        assert load_and_preprocess(p, cfg)[0].shape == (3, 16, 16)
    np.testing.assert_array_equal(np.asarray(load_image(rgba)[0]), rgb)  # alpha dropped
    img16 = np.asarray(load_image(png16)[0])[..., 0].astype(np.float64)
    np.testing.assert_array_equal(img16, np.clip(np.rint(g16 / 257.0), 0, 255))  # rescaled, not clipped
    assert img16.max() > 200


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.zeros((10, 20, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    p = _save(Image.fromarray(arr), tmp_path / "rot.jpg", exif=exif)
    assert load_image(p)[0].size == (10, 20)


def test_corrupt_and_truncated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetError, match=r"bad\.jpg: cannot decode image"):
        load_image(bad)
    good = write_rgb(tmp_path / "t.jpg", 0, (64, 64))
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"trunc\.jpg"):
        load_image(trunc)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"size": 0}, "preprocess.size"),
    ({"crop_pct": 1.5}, "preprocess.crop_pct"),
    ({"interpolation": "cubic"}, "preprocess.interpolation"),
    ({"mean": (0.5, 0.5)}, "preprocess.mean"),
    ({"std": (0.5, 0.0, 0.5)}, "preprocess.std"),
])
def test_config_validation(kw: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        PreprocessConfig(**kw)


def test_from_json() -> None:
    cfg = PreprocessConfig.from_json('{"size": 64, "crop_pct": 1.0, "interpolation": "bilinear"}')
    assert cfg == PreprocessConfig(size=64, crop_pct=1.0, interpolation="bilinear")
    with pytest.raises(ConfigError, match="--preprocess: invalid JSON"):
        PreprocessConfig.from_json("{size: 64")
    with pytest.raises(ConfigError, match="sidecar"):
        PreprocessConfig.from_json('{"sizes": 64}', where="sidecar")
