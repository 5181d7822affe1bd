"""Converters for peers' location-encoder checkpoints a user already has (``geocsp convert``).

A peer format is registered in :data:`CONVERTERS` with a function that turns the checkpoint
(read with ``torch.load(weights_only=True)``: tensors, containers and plain values only,
never code) into a geocsp :class:`~geocsp.nets.LocationEncoder` architecture and state dict.
:func:`convert_checkpoint` writes it as a geocsp encoder directory (``model.safetensors`` +
``config.json``, kind ``location_encoder``, the source under ``"converted_from"``),
atomically; on any refusal nothing is written. The formats: :mod:`geocsp.pretrained.peers`.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geocsp._registry import Registry
from geocsp.data.tables import refuse_existing
from geocsp.errors import CheckpointError, ConfigError, MissingFileError
from geocsp.nets.location_encoder import LocationEncoderConfig
from geocsp.pretrained.registry import StateDict, encoder_with, sha256_file


@dataclass(frozen=True)
class Converted:
    """A peer checkpoint translated into geocsp terms.

    Args:
        config: the geocsp architecture.
        tensors: geocsp state-dict keys -> tensors.
        source: what to record about the source in ``config.json`` (peer hyper-parameters).
    """

    config: LocationEncoderConfig
    tensors: StateDict
    source: dict[str, Any]


@dataclass(frozen=True)
class PeerFormat:
    """A registered peer checkpoint format.

    Args:
        peer: the peer's name in messages (``SatCLIP``).
        file: what the file is (``Lightning .ckpt``).
        convert: ``(checkpoint mapping, where) -> Converted``; raises
            :class:`CheckpointError` on a checkpoint of another kind or shape.
    """

    peer: str
    file: str
    convert: Callable[[Mapping[str, Any], str], Converted]


CONVERTERS: Registry[PeerFormat] = Registry("checkpoint kind")
"""kind (``satclip``, ``sinr``, ``csp``) -> :class:`PeerFormat`; ``geocsp convert KIND``."""


def read_checkpoint(path: str | Path) -> Mapping[str, Any]:
    """A torch checkpoint read with the restricted loader (no code runs).

    Args:
        path: the file.

    Returns:
        The top-level mapping.

    Raises:
        MissingFileError: when the file does not exist.
        CheckpointError: when the file needs code to load (a pickle with classes or
            functions), is truncated or not a torch file, or does not hold a mapping.
    """
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p}: a folder; expected the peer's checkpoint file (.pt / .pth / .ckpt)")
    if not p.is_file():
        raise MissingFileError(f"{p}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the refusal below is the message
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        needed = re.search(r"GLOBAL (\S+)", text)
        if needed:
            raise CheckpointError(
                f"{p}: refused: it needs {needed.group(1)} to load (code or objects other than "
                "tensors); geocsp reads checkpoints with torch.load(weights_only=True) only"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        why = detail.group(1).strip()[:80] if detail else type(e).__name__
        raise CheckpointError(f"{p}: not a torch checkpoint the restricted loader can read ({why})") from None
    except Exception as e:  # truncated zip, not a torch file, ...: one line, whatever the cause
        raise CheckpointError(f"{p}: not a readable torch checkpoint ({type(e).__name__})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{p}: expected a checkpoint mapping, found a {type(obj).__name__}")
    return obj


def section(ckpt: Mapping[str, Any], key: str, where: str, kind: str) -> Mapping[str, Any]:
    """``ckpt[key]`` when it is a mapping, else a one-line refusal naming the kind expected.

    Args:
        ckpt: the checkpoint mapping.
        key: the entry (``state_dict``, ``params``, ``hyper_parameters``).
        where: the file, for messages.
        kind: the expected checkpoint kind, for messages.

    Returns:
        The entry.

    Raises:
        CheckpointError: when it is missing or not a mapping.
    """
    value = ckpt.get(key)
    if not isinstance(value, Mapping):
        found = ", ".join(sorted(map(str, ckpt))[:6]) or "nothing"
        raise CheckpointError(f"{where}: not a {kind} checkpoint (no '{key}' mapping; found {found})")
    return value


def param(params: Mapping[str, Any], key: str, where: str, types: tuple[type, ...] = (int,)) -> Any:
    """A hyper-parameter of the peer checkpoint, type-checked.

    Args:
        params: the checkpoint's hyper-parameter mapping.
        key: the name.
        where: the file and section, for messages.
        types: accepted Python types.

    Returns:
        The value.

    Raises:
        CheckpointError: when it is missing or of another type.
    """
    if key not in params:
        raise CheckpointError(f"{where}: hyper-parameter '{key}' is missing")
    value = params[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join(t.__name__ for t in types)
        raise CheckpointError(f"{where}: hyper-parameter '{key}' = {value!r}, expected {names}")
    return value


def choice(params: Mapping[str, Any], key: str, allowed: Mapping[str, Any] | tuple[str, ...], where: str) -> Any:
    """A string hyper-parameter that must be one of ``allowed`` (mapped when a mapping).

    Args:
        params: the checkpoint's hyper-parameter mapping.
        key: the name.
        allowed: the accepted values, or value -> what it maps to.
        where: the file and section, for messages.

    Returns:
        The value, or what it maps to.

    Raises:
        CheckpointError: naming the value and what geocsp can convert.
    """
    value = param(params, key, where, (str,))
    if value not in allowed:
        raise CheckpointError(
            f"{where}: {key} = {value!r} cannot be converted; geocsp converts {', '.join(map(repr, allowed))}"
        )
    return allowed[value] if isinstance(allowed, Mapping) else value


def tensors_under(state: Mapping[str, Any], prefix: str, where: str) -> StateDict:
    """The tensors whose key starts with ``prefix``, prefix removed.

    Args:
        state: a state dict.
        prefix: the key prefix (``""`` for all).
        where: the file, for messages.

    Returns:
        key -> tensor.

    Raises:
        CheckpointError: when an entry under ``prefix`` is not a tensor, or none is there.
    """
    out: StateDict = {}
    for key, value in state.items():
        if isinstance(key, str) and key.startswith(prefix):
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{where}: state-dict entry '{key}' is not a tensor")
            out[key[len(prefix):]] = value
    if not out:
        raise CheckpointError(f"{where}: the state dict has no '{prefix}*' tensors")
    return out


def renamed(state: StateDict, names: Mapping[str, str], where: str, kind: str) -> StateDict:
    """``state`` with its keys renamed by ``names`` (peer key -> geocsp key); nothing left over.

    Args:
        state: the peer's tensors.
        names: peer key -> geocsp key, every key expected.
        where: the file, for messages.
        kind: the expected checkpoint kind, for messages.

    Returns:
        geocsp key -> tensor.

    Raises:
        CheckpointError: when a key is missing or an unexpected one is present.
    """
    missing = sorted(set(names) - set(state))
    extra = sorted(set(state) - set(names))
    if missing or extra:
        what = f"lacks '{missing[0]}'" if missing else f"has the unexpected '{extra[0]}'"
        raise CheckpointError(f"{where}: not the {kind} layout its hyper-parameters describe ({what})")
    return {names[k]: v for k, v in state.items()}


def convert_checkpoint(kind: str, path: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Convert a peer's checkpoint into a geocsp encoder directory.

    Example::

        convert_checkpoint("satclip", "satclip-resnet18-l10.ckpt", "enc/")
        LocationEncoder.from_pretrained("enc/")      # (lon, lat) degrees -> (B, 256)

    Args:
        kind: ``satclip``, ``sinr`` or ``csp`` (``geocsp convert --help``).
        path: the peer's checkpoint file.
        out: the directory to write (refused when it exists, unless ``overwrite``).
        overwrite: replace an existing ``out``.

    Returns:
        ``out``, written atomically (complete or absent).

    Raises:
        ConfigError: on an unknown kind, an existing ``out`` without ``overwrite``, or an
            ``out`` that is a file, holds other files than an encoder's, or holds ``path``.
        MissingFileError: when ``path`` does not exist.
        CheckpointError: when the file needs code to load, is truncated, is a checkpoint
            of another kind, or its tensors do not fit the architecture it describes.
    """
    entry = CONVERTERS.get(kind)
    target = refuse_existing(out, overwrite)
    _refuse_replacing_what_is_not_an_encoder(target, Path(path))
    ckpt = read_checkpoint(path)
    where = str(path)
    conv = entry.obj.convert(ckpt, where)
    model = encoder_with(conv.config, conv.tensors, where, f"the {entry.obj.peer} checkpoint", own_position=True)
    source = {"kind": entry.name, "peer": entry.obj.peer, "file": Path(path).name,
              "sha256": sha256_file(path), **conv.source}
    return model.save_pretrained(target, extra_config={"converted_from": source})


ENCODER_FILES = frozenset({"config.json", "model.safetensors"})
"""What ``LocationEncoder.save_pretrained`` writes: all that ``--overwrite`` may replace."""


def _refuse_replacing_what_is_not_an_encoder(target: Path, source: Path) -> None:
    """``--overwrite`` replaces an encoder directory, never a file, other files or the input."""
    if target.resolve() == source.resolve() or target.resolve() in source.resolve().parents:
        raise ConfigError(f"{target}: holds the input {source}; choose another --out")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target}: is a file; expected a directory for the encoder (--out)")
    other = sorted(p.name for p in target.iterdir() if p.name not in ENCODER_FILES) if target.is_dir() else []
    if other:
        raise ConfigError(f"{target}: holds files that are not a geocsp encoder's (e.g. {other[0]!r}); "
                          "refusing to replace it, choose another --out")
