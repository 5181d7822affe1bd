"""Atomic file and directory writes, safetensors + JSON checkpoint directories (no pickle).

Every artifact appears complete or not at all: a file (:func:`atomic_path`) or a directory
(:func:`atomic_dir`) is written under a temporary name beside its target, flushed to disk
(``fsync`` of the files and the directory, once per artifact) and renamed into place.
Temporaries are named ``.<target>.<random>.tmp`` (a directory moved aside while it is
replaced: ``.<target>.<random>.old``); :func:`clean_temporaries` removes those a killed
process left behind. :func:`fault_point` lets tests kill the process at a named write point.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file, save

from geocsp.errors import CheckpointError, ConfigError
from geocsp.faults import fault_point

WEIGHTS_NAME = "model.safetensors"


def cache_dir() -> Path:
    """The geocsp cache directory (GeoWorlds, land mask).

    Returns:
        ``$GEOCSP_CACHE`` if set, else ``~/.cache/geocsp``.

    Raises:
        ConfigError: when that path exists and is not a directory.
    """
    base = os.environ.get("GEOCSP_CACHE")
    path = Path(base) if base else Path.home() / ".cache" / "geocsp"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: the geocsp cache ({'GEOCSP_CACHE' if base else 'default'}) is not a directory; "
                          "expected a directory (set GEOCSP_CACHE to one)")
    return path


CONFIG_NAME = "config.json"


def _fault(label: str | None, where: str) -> None:
    if label is not None:
        fault_point(f"{label}.{where}")


def temp_name(name: str, kind: str = "tmp") -> str:
    """A fresh temporary name for ``name`` in the scheme :func:`clean_temporaries` knows.

    Args:
        name: the target's file or directory name.
        kind: ``tmp`` (being written) or ``old`` (moved aside while being replaced).

    Returns:
        ``.<name>.<12 hex>.<kind>``.
    """
    return f".{name}.{uuid.uuid4().hex[:12]}.{kind}"


_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{6,}\.(?P<kind>tmp|old)$")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of geocsp's temporaries (see :func:`temp_name`).

    Args:
        name: a file or directory name (no path).

    Returns:
        True for ``.<name>.<random>.tmp`` / ``.old``.
    """
    return _TEMP_RE.match(name) is not None


def clean_temporaries(directory: str | Path, recursive: bool = True) -> list[Path]:
    """Remove the temporaries a killed writer left in ``directory`` (and below it).

    ``.<name>.<random>.tmp`` files and directories are deleted. A ``.<name>.<random>.old``
    directory (a complete artifact moved aside for its replacement) is renamed back to
    ``<name>`` when that is missing, and deleted otherwise. Only call this on a directory
    no other process is writing (e.g. under a run lock).

    Args:
        directory: the directory to clean; nothing outside it is touched.
        recursive: also clean sub-directories (not the temporaries' insides).

    Returns:
        The temporaries removed or restored.
    """
    root = Path(directory)
    found: list[Path] = []
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        m = _TEMP_RE.match(entry.name)
        if m is None:
            if recursive and entry.is_dir() and not entry.is_symlink():
                found += clean_temporaries(entry, recursive)
            continue
        found.append(entry)
        target = root / m["name"]
        if m["kind"] == "old" and entry.is_dir() and not target.exists():
            os.replace(entry, target)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return found


def fsync_file(path: str | Path) -> None:
    """Flush one file's data to disk (raises OSError, e.g. ENOSPC, when that fails).

    Args:
        path: an existing file.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries to disk (a no-op where directories cannot be opened).

    Args:
        path: an existing directory.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        with contextlib.suppress(OSError):  # file systems without directory fsync
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _names(target: Path) -> Iterator[None]:
    """Report an OSError on a hidden temporary beside ``target`` as an error on ``target``.

    That is the path the user asked for: ``out/ds: Permission denied``, not ``out/.ds.c7605.tmp: ...``.
    """
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(target)) from None


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fault: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Nothing is left at ``path`` if the block raises, so readers never see a
    half-written file. The file and its directory are fsynced around the rename.

    Args:
        path: the final file path; its parent directory is created.
        fault: artifact label of the :func:`fault_point` s around the rename (tests).

    Yields:
        The temporary path to write (in the same directory as ``path``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _names(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the file the usual umask mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
            fsync_file(tmp_path)
        _fault(fault, "before")
        with _names(target):  # e.g. a directory at ``path``: named, not the temporary
            os.replace(tmp_path, target)
        fsync_dir(target.parent)
        _fault(fault, "after")
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, fault: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it becomes ``path``.

    The files and the directory are fsynced, then renamed into place; an existing
    directory at ``path`` is moved aside first and deleted after the new one is in, so
    ``path`` is always either the old or the new complete directory (a kill between the
    two renames leaves the old one as ``.<name>.<random>.old``, which
    :func:`clean_temporaries` puts back). If the block raises, nothing changes at ``path``.

    Args:
        path: the final directory; its parent is created.
        fault: artifact label of the :func:`fault_point` s around the renames (tests).

    Yields:
        The empty temporary directory to fill.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / temp_name(target.name)
    with _names(target):
        tmp.mkdir()  # honours the umask, unlike tempfile.mkdtemp
    try:
        yield tmp
        for sub, _, files in os.walk(tmp):
            for f in files:
                fsync_file(Path(sub) / f)
            fsync_dir(sub)
        _fault(fault, "before")
        _swap_dir(tmp, target, fault)
        fsync_dir(target.parent)
        _fault(fault, "after")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_dir(tmp: Path, target: Path, fault: str | None) -> None:
    """Rename ``tmp`` to ``target``, moving an existing ``target`` aside first."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = target.parent / temp_name(target.name, "old")
    os.replace(target, old)
    _fault(fault, "aside")
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str, *, fault: str | None = None) -> None:
    """Write text to ``path`` atomically.

    Args:
        path: destination file.
        text: the full file contents.
        fault: artifact label of the fault points around the rename (tests).
    """
    with atomic_path(path, fault=fault) as tmp:
        tmp.write_text(text)


def atomic_write_npy(path: str | Path, arr: np.ndarray, *, fault: str | None = None) -> None:
    """Write ``arr`` to ``path`` as ``.npy`` (no pickles), atomically; ``fault`` as in :func:`atomic_path`."""
    with atomic_path(path, fault=fault) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def json_text(data: Any) -> str:
    """The JSON text geocsp writes: indented, keys in the given order, newline-terminated.

    Args:
        data: JSON-serialisable data; NumPy scalars / arrays and Paths are converted.

    Returns:
        The text.
    """
    return json.dumps(data, indent=2, default=_json_default) + "\n"


def atomic_write_json(path: str | Path, data: Any, *, fault: str | None = None) -> None:
    """Write JSON (indented, sorted as given) to ``path`` atomically.

    Args:
        path: destination file.
        data: JSON-serialisable data; NumPy scalars / arrays and Paths are converted.
        fault: artifact label of the fault points around the rename (tests).
    """
    atomic_write_text(path, json_text(data), fault=fault)


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
    with atomic_path(path) as tmp:
        write_tensors(tmp, tensors, metadata)


def write_tensors(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save tensors to a safetensors file in place (inside an :func:`atomic_dir`).

    Args:
        path: destination ``.safetensors`` file.
        tensors: name -> tensor (detached, made contiguous and moved to CPU).
        metadata: optional string -> string header metadata.
    """
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    with open(path, "wb") as f:  # Python's write: a full disk is an OSError (ENOSPC)
        f.write(data)


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
    """Write ``model.safetensors`` + ``config.json`` as the directory ``directory``, atomically.

    The directory appears complete or not at all (:func:`atomic_dir`); an existing one is
    replaced as a whole. Fault points: ``artifact.before`` / ``.aside`` / ``.after``.

    Args:
        directory: the checkpoint directory.
        tensors: name -> tensor, written to ``model.safetensors``.
        config: JSON-serialisable metadata, written to ``config.json``.

    Returns:
        The directory, as a Path.
    """
    d = Path(directory)
    with atomic_dir(d, fault="artifact") as tmp:
        write_tensors(tmp / WEIGHTS_NAME, tensors)
        (tmp / CONFIG_NAME).write_text(json_text(config))
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
