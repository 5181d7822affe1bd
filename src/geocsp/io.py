"""Atomic file writes and safetensors + JSON checkpoint directories (no pickle)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file, save_file

from geocsp.errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"


def cache_dir() -> Path:
    """The geocsp cache directory (GeoWorlds, land mask).

    Returns:
        ``$GEOCSP_CACHE`` if set, else ``~/.cache/geocsp``.
    """
    base = os.environ.get("GEOCSP_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "geocsp"


CONFIG_NAME = "config.json"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Nothing is left at ``path`` if the block raises, so readers never see a
    half-written file.

    Args:
        path: the final file path; its parent directory is created.

    Yields:
        The temporary path to write (in the same directory as ``path``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the file the usual umask mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to ``path`` atomically.

    Args:
        path: destination file.
        text: the full file contents.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write JSON (indented, sorted as given) to ``path`` atomically.

    Args:
        path: destination file.
        data: JSON-serialisable data; NumPy scalars / arrays and Paths are converted.
    """
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_tensors(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save a dict of torch tensors to a safetensors file atomically.

    Args:
        path: destination ``.safetensors`` file.
        tensors: name -> tensor (detached, made contiguous and moved to CPU).
        metadata: optional string -> string header metadata.
    """
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)


def load_tensors(path: str | Path) -> dict[str, Any]:
    """Load a safetensors file into CPU torch tensors.

    Args:
        path: a ``.safetensors`` file.

    Returns:
        name -> CPU tensor.

    Raises:
        CheckpointError: when the file is missing or not a valid safetensors file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint weights not found")
    try:
        return load_file(str(p))
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{p}: not a valid safetensors file ({type(e).__name__})") from None


def save_checkpoint_dir(directory: str | Path, tensors: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (each atomically).

    Args:
        directory: the checkpoint directory (created if missing).
        tensors: name -> tensor, written to ``model.safetensors``.
        config: JSON-serialisable metadata, written to ``config.json``.

    Returns:
        The directory, as a Path.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_tensors(d / WEIGHTS_NAME, tensors)
    atomic_write_json(d / CONFIG_NAME, config)
    return d


def load_checkpoint_dir(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read (tensors, config) from a checkpoint directory.

    Args:
        directory: a directory written by :func:`save_checkpoint_dir`.

    Returns:
        ``(tensors, config)``: name -> CPU tensor, and the parsed ``config.json``.

    Raises:
        CheckpointError: when the directory, weights or config are missing or corrupt.
    """
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"{d}: checkpoint directory not found")
    cfg_path = d / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing config.json")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path}: invalid JSON at line {e.lineno}") from None
    return load_tensors(d / WEIGHTS_NAME), config
