"""The registry of pretrained location encoders and the one offline loader.

A pretrained entry is a released file (found inside an installed package, or given as a
path) plus a model card and a converter to a geocsp :class:`~geocsp.nets.LocationEncoder`.
The released file is verified by its SHA-256, read once (``torch.load(weights_only=True)``:
tensors only, no code runs) and converted into a geocsp checkpoint directory
(``model.safetensors`` + ``config.json``) under ``geocsp.io.cache_dir() / "pretrained"``;
every later load reads that directory. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geocsp._registry import Registry
from geocsp.config import to_dict
from geocsp.errors import CheckpointError, ConfigError, MissingDependencyError, MissingFileError
from geocsp.io import CONFIG_NAME, cache_dir
from geocsp.nets import LocationEncoder
from geocsp.nets.location_encoder import LocationEncoderConfig, register_name_loader

PREFIX = "pretrained:"
"""A source string starting with this names a pretrained entry, whatever exists on disk."""

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelCard:
    """What a pretrained encoder is, where it comes from and how it is fed.

    Args:
        source: project or paper the weights come from (URL).
        training_data: what the released weights were trained on.
        licence: licence of the released weights.
        input_convention: the release's own input convention (geocsp always takes
            (lon, lat) in degrees).
        output_dim: embedding dimension d.
        sha256: SHA-256 of the released weights file (hex).
        package: the pip package that ships the file.
        package_file: the file's path inside the installed package (``/``-separated,
            starting with the package directory).
        install: the command that installs the package offline-friendly.
    """

    source: str
    training_data: str
    licence: str
    input_convention: str
    output_dim: int
    sha256: str
    package: str
    package_file: str
    install: str


@dataclass(frozen=True)
class PretrainedModel:
    """A registered pretrained encoder: card, geocsp architecture and state-dict converter.

    Args:
        card: the model card.
        config: the geocsp architecture the converted weights fit.
        convert: ``(released state dict, where) -> geocsp state dict``; ``where`` names
            the file in error messages. Raises :class:`CheckpointError` on a foreign layout.
    """

    card: ModelCard
    config: LocationEncoderConfig
    convert: Callable[[StateDict, str], StateDict]


PRETRAINED: Registry[PretrainedModel] = Registry("pretrained encoder")
"""name -> :class:`PretrainedModel`; listed by ``geocsp encoders --pretrained``."""


def pretrained_name(source: Any) -> str | None:
    """The canonical pretrained name ``source`` refers to, or None for a path.

    ``"pretrained:NAME"`` always names an entry; a bare registered name does when no file or
    directory of that name exists (an existing path wins).

    Args:
        source: a path or name given where a run or encoder directory is accepted.

    Returns:
        The canonical name, or None when ``source`` is to be read as a path.

    Raises:
        ConfigError: on ``"pretrained:NAME"`` with an unknown NAME.
    """
    if not isinstance(source, (str, Path)):
        return None
    text = str(source)
    if text.startswith(PREFIX):
        return PRETRAINED.canonical(text[len(PREFIX):])
    if text in PRETRAINED and not Path(text).exists():
        return PRETRAINED.canonical(text)
    return None


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks.

    Args:
        path: the file.

    Returns:
        64 hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_path(name: str) -> Path:
    """The converted checkpoint directory of entry ``name``: ``<cache>/pretrained/<name>-<sha12>``.

    Args:
        name: a registered name or alias.

    Returns:
        The directory (it may not exist yet).

    Raises:
        ConfigError: on an unknown name.
    """
    entry = PRETRAINED.get(name)
    return cache_dir() / "pretrained" / f"{entry.name}-{entry.obj.card.sha256[:12]}"


def package_weights(name: str) -> Path | None:
    """The released weights file inside the installed package, or None when not installed.

    The package is located with :func:`importlib.util.find_spec`, which does not import it.

    Args:
        name: a registered name or alias.

    Returns:
        The file path, or None when the package or the file is missing.
    """
    card = PRETRAINED.get(name).obj.card
    try:
        spec = importlib.util.find_spec(card.package)
    except (ImportError, ValueError):  # a broken install, or a module without a spec
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent
    path = root.joinpath(*card.package_file.split("/"))
    return path if path.is_file() else None


def _read_release(name: str, weights: str | Path | None) -> tuple[StateDict, Path]:
    """The verified released state dict of entry ``name`` and the file it came from."""
    card = PRETRAINED.get(name).obj.card
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise MissingFileError(f"{path}: weights file of pretrained encoder '{name}' not found")
    else:
        found = package_weights(name)
        if found is None:
            raise MissingDependencyError(
                f"pretrained encoder '{name}' needs {card.package_file} from the '{card.package}' "
                f"package: {card.install} (nothing is downloaded)"
            )
        path = found
    digest = sha256_file(path)
    if digest != card.sha256:
        raise CheckpointError(
            f"{path}: SHA-256 {digest[:12]}... is not the released '{name}' weights "
            f"({card.sha256[:12]}...); refusing to read it"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a verified file should load; report anything else in one line
        raise CheckpointError(f"{path}: cannot read the weights ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return state, path


def convert(name: str, weights: str | Path | None = None) -> Path:
    """Convert the released weights of ``name`` into its geocsp cache directory.

    Args:
        name: a registered name or alias.
        weights: the released file; None finds it inside the installed package.

    Returns:
        The cache directory (written atomically: complete or absent).

    Raises:
        ConfigError: on an unknown name.
        MissingDependencyError: when the package (or its file) is not installed.
        MissingFileError: when ``weights`` does not exist.
        CheckpointError: when the file is not the released one or has a foreign layout.
    """
    entry = PRETRAINED.get(name)
    state, path = _read_release(entry.name, weights)
    model = encoder_with(entry.obj.config, entry.obj.convert(state, str(path)), str(path), f"'{entry.name}'")
    card = {"name": entry.name, "description": entry.description, **to_dict(entry.obj.card)}
    return model.save_pretrained(cache_path(entry.name), extra_config={"pretrained": card})


def encoder_with(config: LocationEncoderConfig, tensors: StateDict, where: str, what: str,
                 *, own_position: bool = False) -> LocationEncoder:
    """A geocsp encoder of architecture ``config`` holding exactly ``tensors``.

    Args:
        config: the architecture the converted weights are meant for.
        tensors: geocsp state-dict keys -> tensors (any float dtype; cast on load).
        where: the source file, for messages.
        what: what was converted (``'geoclip'``, ``a SatCLIP checkpoint``), for messages.
        own_position: the position encoder's buffers (frequencies) are geocsp's own,
            computed from ``config`` (the peer computes them from the same hyper-parameters
            and does not store them); ``tensors`` then holds the network only.

    Returns:
        The encoder, in eval mode.

    Raises:
        CheckpointError: when ``config`` is invalid, or a tensor is missing, unexpected or
            of another shape than the architecture needs (one line naming it).
    """
    try:
        model = LocationEncoder(config)
    except ConfigError as e:
        raise CheckpointError(f"{where}: the hyper-parameters of {what} give no geocsp encoder ({e})") from None
    own = model.state_dict()
    if own_position:
        tensors = {**{k: v for k, v in own.items() if k.startswith("position.")}, **tensors}
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        what_key = f"lacks '{missing[0]}'" if missing else f"has the unexpected '{extra[0]}'"
        raise CheckpointError(f"{where}: converted weights of {what} do not fit the architecture ({what_key})")
    for key, value in own.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{where}: tensor for '{key}' of {what} has shape {tuple(tensors[key].shape)}, "
                f"the architecture needs {tuple(value.shape)}"
            )
    model.load_state_dict(tensors)
    return model.eval()


def load(name: str, weights: str | Path | None = None) -> LocationEncoder:
    """A pretrained location encoder, converted once into the geocsp cache, in eval mode.

    Example::

        enc = geocsp.pretrained.load("geoclip")   # (B, 2) lon, lat degrees -> (B, 512)

    Args:
        name: a registered name or alias (``geocsp encoders --pretrained``).
        weights: the released weights file when converting; None finds it inside the
            installed package. Unused once the cache directory exists.

    Returns:
        The encoder; it takes (lon, lat) in degrees like every geocsp encoder.

    Raises:
        ConfigError: on an unknown name.
        MissingDependencyError: when the weights are neither cached nor installed.
        MissingFileError: when ``weights`` does not exist.
        CheckpointError: when the released file is not the expected one, or the cache
            directory is corrupt (delete it to convert again).
    """
    directory = cache_path(name)
    if not (directory / CONFIG_NAME).is_file():
        convert(name, weights)
    try:
        return LocationEncoder.from_pretrained(directory)
    except CheckpointError as e:
        raise CheckpointError(f"{e} (delete {directory} to convert the weights again)") from None


def model_overrides(name: str) -> tuple[str, ...]:
    """``model.*=value`` overrides that state entry ``name``'s architecture, for ``--init NAME``.

    ``finetune --init`` refuses ``model.*`` values (from ``--set`` or a preset) that differ
    from the init encoder's. A preset written for another architecture (``geoworld-demo``:
    grid + FFN, d = 128) is made consistent with these, e.g. a ``bench paper`` method
    ``Method("GeoCLIP init", finetune=("init=geoclip", *model_overrides("geoclip")))``.

    Args:
        name: a registered name or alias.

    Returns:
        One ``model.FIELD=JSON`` string per :class:`LocationEncoderConfig` field.

    Raises:
        ConfigError: on an unknown name.
    """
    config = to_dict(PRETRAINED.get(name).obj.config)
    return tuple(f"model.{key}={json.dumps(value)}" for key, value in config.items())


def pretrained_rows() -> list[dict[str, Any]]:
    """One row per registered pretrained encoder: name, description, the card and status.

    Returns:
        Dicts with ``name``, ``aliases``, ``description``, the :class:`ModelCard` fields,
        ``encoder`` / ``network`` (the geocsp architecture) and ``status``: ``cached``
        (converted), ``installed`` (the package file is there) or ``missing``.
    """
    rows = []
    for entry in PRETRAINED:
        cached = (cache_path(entry.name) / CONFIG_NAME).is_file()
        installed = not cached and package_weights(entry.name) is not None
        rows.append({
            "name": entry.name,
            "aliases": list(entry.aliases),
            "description": entry.description,
            **to_dict(entry.obj.card),
            "encoder": entry.obj.config.encoder,
            "network": entry.obj.config.network,
            "status": "cached" if cached else "installed" if installed else "missing",
        })
    return rows


def _load_by_name(source: str) -> LocationEncoder | None:
    """:meth:`LocationEncoder.from_pretrained`'s name lookup: a pretrained entry, or None."""
    name = pretrained_name(source)
    return load(name) if name is not None else None


register_name_loader(_load_by_name)
