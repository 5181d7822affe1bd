"""Export a torch backbone to ONNX (+ preprocessing sidecar) and check ORT matches torch.

The exported file extracts features without torch: ``geocsp features extract DIR
--backbone onnx --weights OUT.onnx`` reads the preprocessing from ``OUT.json``.
Uses torch's TorchScript-based exporter (``dynamo=False``; needs ``onnx``), output name
``features``, dynamic batch dimension.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.errors import ConfigError
from geocsp.features.backends import load_backbone
from geocsp.features.preprocess import PreprocessConfig
from geocsp.features.weights import require
from geocsp.io import atomic_path, atomic_write_text


def _torch_module(backbone: str, weights: str | None) -> tuple[Any, PreprocessConfig]:
    """(nn.Module returning (B, D) features, PreprocessConfig) of a torch backbone."""
    bb = load_backbone(backbone, weights, device="cpu")
    if bb.module is None:
        raise ConfigError(
            f"export-onnx: backbone '{backbone}' is not built from a model definition; "
            "use timm:NAME, torchvision:NAME or efficientnet-lite0"
        )
    return bb.module, bb.preprocess


def export_onnx(backbone: str, weights: str | None, out: str | Path, *, size: int | None = None,
                opset: int = 17, check: bool = True, atol: float = 1e-4) -> dict[str, Any]:
    """Write ``out`` (ONNX) and ``out.json`` (preprocessing sidecar); compare ORT vs torch.

    Args:
        backbone: ``timm:NAME``, ``torchvision:NAME`` or ``efficientnet-lite0``.
        weights: local weights file.
        out: ``.onnx`` path.
        size: input side for the trace (default: the backbone's crop size); written to the
            sidecar, since models with TF "same" padding (Lite0) trace pads for one size.
        opset: ONNX opset.
        check: run ONNX Runtime on a random batch and compare with torch.
        atol: maximum allowed absolute difference (relative to max |feature|, floored at 1).

    Returns:
        ``{"onnx": path, "sidecar": path, "max_abs_diff": float | None, "dim": D}``.

    Raises:
        MissingDependencyError: torch/onnx/onnxruntime missing.
        ConfigError: unsupported backbone, or ORT output differs beyond ``atol``.
    """
    torch = require("torch", "torch", "export-onnx")
    require("onnx", "onnx", "export-onnx")
    model, pre = _torch_module(backbone, weights)
    model = model.eval().to("cpu")
    side = size or pre.size
    pre = replace(pre, size=side)  # TF-"same" padding is traced for this input size
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, side, side), np.float32))
    out = Path(out)
    with atomic_path(out) as tmp, torch.no_grad():
        torch.onnx.export(model, (x,), str(tmp), input_names=["images"], output_names=["features"],
                          dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    sidecar = out.with_suffix(".json")
    atomic_write_text(sidecar, json.dumps({"backbone": backbone, "preprocess": asdict(pre)}, indent=2))
    with torch.no_grad():
        ref = model(x).reshape(2, -1).numpy()
    diff = None
    if check:
        ort = require("onnxruntime", "onnxruntime", "export-onnx")
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = sess.run(["features"], {"images": x.numpy()})[0].reshape(2, -1)
        diff = float(np.abs(got - ref).max())
        if diff > atol * max(1.0, float(np.abs(ref).max())):
            raise ConfigError(f"export-onnx: ONNX Runtime output differs from torch by {diff:.3g}")
    return {"onnx": str(out), "sidecar": str(sidecar), "max_abs_diff": diff, "dim": int(ref.shape[1])}
