"""Local weights only: hub names refused, optional packages imported on demand, SHA-256.

Every backbone loader goes through these helpers, so nothing is ever downloaded: weights
must be a local file or folder, model names may carry no hub prefix, and the Hugging Face
hub is set offline before an optional package is imported.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from typing import Any

from geocsp.errors import ConfigError, MissingDependencyError, MissingFileError

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
