"""Helpers for the feature-extraction tests (imported by name; tests/ has no packages)."""


from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

STUBS = Path(__file__).resolve().parent / "_stubs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _stub_torchvision_if_broken() -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:
        for k in [k for k in sys.modules if k.startswith("torchvision")]:
            del sys.modules[k]
        if str(STUBS) not in sys.path:
            sys.path.insert(0, str(STUBS))


def import_timm() -> Any:
    """timm, with the test-only torchvision stub first on sys.path if torchvision is broken."""
    _stub_torchvision_if_broken()
    try:
        import timm
    except Exception as e:  # absent, or a broken torchvision (RuntimeError)
        pytest.skip(f"timm unavailable: {type(e).__name__}: {e}")
    return timm


def import_open_clip() -> Any:
    """open_clip, with the same torchvision stub; skips when it (or ftfy/regex) is absent."""
    _stub_torchvision_if_broken()
    try:
        import open_clip
    except Exception as e:
        pytest.skip(f"open_clip unavailable: {type(e).__name__}: {e}")
    return open_clip


def tiny_onnx(path: Path, dim: int = 16, seed: int = 0) -> Path:
    """A 95 kB-class CNN built with onnx.helper: 2x(Conv3x3 s2 + ReLU) -> GAP -> (B, dim)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, np.sqrt(2 / 27), (8, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, np.sqrt(2 / 72), (dim, 8, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["features"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", dim])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_rgb(path: Path, seed: int, size: tuple[int, int] = (40, 30), fmt: str | None = None) -> Path:
    """A random RGB image file (w, h) = size."""
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_gps_photo(path: Path, lonlat: tuple[float, float], size: tuple[int, int] = (40, 48)) -> Path:
    """A JPEG whose EXIF GPS IFD holds ``lonlat`` (degrees) as DMS rationals + refs."""
    from PIL import Image, TiffImagePlugin

    def dms(v: float) -> tuple:
        v = abs(v)
        d, m = int(v), int((abs(v) - int(v)) * 60)
        s = round((v - d - m / 60) * 360000)
        return tuple(TiffImagePlugin.IFDRational(n, q) for n, q in ((d, 1), (m, 1), (s, 100)))

    lon, lat = lonlat
    exif = Image.Exif()
    exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
    write_rgb(path, 99, size, fmt="JPEG")
    with Image.open(path) as im:
        im.load()
        im.save(path, exif=exif)
    return path
