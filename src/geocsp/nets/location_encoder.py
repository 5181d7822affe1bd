"""The LocationEncoder: position encoding (+ extra features) -> network -> embedding.

``e(x) = NN([PE(x) ⊕ extra])`` (spec §1, §3). Saved as a checkpoint directory
(``model.safetensors`` + ``config.json``) with :meth:`LocationEncoder.save_pretrained`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geocsp import __version__
from geocsp.config import from_dict, to_dict
from geocsp.encoders import ENCODERS, get_encoder_config
from geocsp.errors import CheckpointError, ConfigError
from geocsp.io import load_checkpoint_dir, save_checkpoint_dir
from geocsp.nets.base import NETWORKS

KIND = "location_encoder"
"""Value of ``"kind"`` in the ``config.json`` of a saved LocationEncoder."""
_RESERVED = ("config", "geocsp_version")

NameLoader = Callable[[str], "LocationEncoder | None"]
"""``(source) -> encoder``, or None when ``source`` names nothing the loader knows."""
_NAME_LOADERS: list[NameLoader] = []


def register_name_loader(loader: NameLoader) -> NameLoader:
    """Let :meth:`LocationEncoder.from_pretrained` accept names, not only directories.

    ``nets`` sits below the layers that know names (``geocsp.pretrained`` registers the
    released encoders here when it is imported), so the lookup is registered upwards instead
    of imported downwards. Loaders are asked in registration order; an existing directory of
    the same name is for the loader to honour (``geocsp.pretrained``: the path wins).

    Args:
        loader: ``(source) -> LocationEncoder | None``.

    Returns:
        ``loader`` (usable as a decorator).
    """
    _NAME_LOADERS.append(loader)
    return loader


@dataclass(frozen=True)
class LocationEncoderConfig:
    """Config of :class:`LocationEncoder`.

    Args:
        encoder: position-encoder name (``geocsp.encoders`` registry).
        encoder_args: fields of that encoder's config.
        network: network name (``geocsp.nets`` registry); None uses the encoder's
            ``default_network``.
        network_args: fields of that network's config.
        dim: output embedding dimension d.
        extra_dim: width of extra features (covariates, time) appended to the encoding.
        use_position: encode the location; False feeds only the extra features.
    """

    encoder: str = "grid"
    encoder_args: dict[str, Any] = field(default_factory=dict)
    network: str | None = None
    network_args: dict[str, Any] = field(default_factory=dict)
    dim: int = 256
    extra_dim: int = 0
    use_position: bool = True

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError(f"location_encoder.dim must be >= 1, got {self.dim}")
        if self.extra_dim < 0:
            raise ConfigError(f"location_encoder.extra_dim must be >= 0, got {self.extra_dim}")
        if not self.use_position and self.extra_dim == 0:
            raise ConfigError(
                "location_encoder: use_position=false needs extra_dim > 0 (nothing to encode)"
            )


def _resolve_network(
    config: LocationEncoderConfig, default: str, branches: int | None
) -> tuple[str, Any]:
    """The canonical network name and its config object for ``config``.

    Args:
        config: the location encoder's config.
        default: network name used when ``config.network`` is empty.
        branches: fills a missing ``branches`` field (GeoCLIP's multi-branch network);
            None leaves it alone.

    Returns:
        ``(name, network config)``.

    Raises:
        ConfigError: on an unknown network or invalid ``network_args``.
    """
    entry = NETWORKS.get(config.network or default)
    args = dict(config.network_args)
    config_type = entry.config_type()
    if branches is not None and "branches" in {f.name for f in dataclasses.fields(config_type)}:
        args.setdefault("branches", int(branches))
    return entry.name, from_dict(config_type, args, where="network_args")


class LocationEncoder(nn.Module):
    """Location encoder e(x): position encoder, optional extra features, then a network.

    Example::

        >>> enc = LocationEncoder(LocationEncoderConfig(encoder="sphereC+", dim=64))
        >>> enc(torch.tensor([[2.35, 48.85]])).shape
        torch.Size([1, 64])

    Args:
        config: architecture. ``self.config`` keeps the resolved version: canonical
            names, the chosen network and every encoder/network config field.

    Raises:
        ConfigError: on unknown names, unknown config keys or invalid values.
    """

    def __init__(self, config: LocationEncoderConfig | None = None) -> None:
        super().__init__()
        cfg = config or LocationEncoderConfig()
        entry = ENCODERS.get(cfg.encoder)
        enc_cfg = get_encoder_config(entry.name, **cfg.encoder_args)
        self.position: nn.Module | None = entry.obj(enc_cfg) if cfg.use_position else None
        in_dim = cfg.extra_dim + (int(self.position.out_dim) if self.position is not None else 0)
        branches = getattr(self.position, "branches", None)
        network, net_cfg = _resolve_network(cfg, entry.obj.default_network, branches)
        self.network = NETWORKS.get(network).obj(in_dim, cfg.dim, net_cfg)
        self.config = dataclasses.replace(
            cfg,
            encoder=entry.name,
            encoder_args=to_dict(enc_cfg),
            network=network,
            network_args=to_dict(net_cfg),
        )
        self.dim = cfg.dim
        self.in_dim = in_dim

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocationEncoder:
        """Build from a plain mapping of :class:`LocationEncoderConfig` fields.

        Raises:
            ConfigError: on an unknown key or an invalid value.
        """
        return cls(from_dict(LocationEncoderConfig, data, where="location_encoder"))

    def forward(
        self, lonlat: torch.Tensor | None, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed locations.

        Args:
            lonlat: (B, 2) longitude, latitude in degrees (ignored when
                ``use_position`` is False, may then be None).
            extra: (B, extra_dim) extra features; required iff ``extra_dim > 0``.

        Returns:
            (B, dim) embeddings.

        Raises:
            ConfigError: when ``extra`` is missing or has the wrong width.
        """
        parts = []
        if self.position is not None:
            parts.append(self.position(lonlat))
        if self.config.extra_dim:
            if extra is None or extra.ndim != 2 or extra.shape[1] != self.config.extra_dim:
                got = None if extra is None else tuple(extra.shape)
                raise ConfigError(
                    f"LocationEncoder expects extra features of shape (B, {self.config.extra_dim}), got {got}"
                )
            parts.append(extra.to(parts[0].dtype) if parts else extra)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return self.network(x)

    def checkpoint_config(self, extra_config: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``config.json`` mapping: kind, resolved config, version, plus ``extra_config``.

        Raises:
            ConfigError: when ``extra_config`` uses a reserved key (config, geocsp_version).
        """
        extra_config = dict(extra_config or {})
        clash = [k for k in _RESERVED if k in extra_config]
        if clash:
            raise ConfigError(f"extra_config may not set the reserved key '{clash[0]}'")
        return {
            "kind": KIND,
            "config": to_dict(self.config),
            "geocsp_version": __version__,
            **extra_config,
        }

    def save_pretrained(
        self,
        directory: str | Path,
        extra_tensors: dict[str, torch.Tensor] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``model.safetensors`` + ``config.json`` into ``directory`` (atomically per file).

        Args:
            directory: checkpoint directory (created if needed).
            extra_tensors: more tensors to store beside the weights (e.g. a class matrix);
                names may not collide with the module's state-dict keys.
            extra_config: more top-level ``config.json`` keys (may override ``kind``).

        Returns:
            The directory path.

        Raises:
            ConfigError: on a tensor-name collision or a reserved config key.
        """
        tensors = dict(self.state_dict())
        for name, value in (extra_tensors or {}).items():
            if name in tensors:
                raise ConfigError(
                    f"extra tensor '{name}' collides with a LocationEncoder weight name"
                )
            tensors[name] = value
        return save_checkpoint_dir(directory, tensors, self.checkpoint_config(extra_config))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> LocationEncoder:
        """Load a saved LocationEncoder directory, or a released encoder by name.

        Example::

            enc = LocationEncoder.from_pretrained("runs/pre/encoder")
            enc = LocationEncoder.from_pretrained("geoclip")   # docs/pretrained.md

        Names are resolved by the loaders registered with :func:`register_name_loader`
        (``geocsp.pretrained`` registers ``geoclip`` and ``pretrained:geoclip`` when it is
        imported, as ``geocsp.checkpoints``, training and the CLI do); an existing directory
        of that name wins.

        Args:
            directory: a directory written by :meth:`save_pretrained` (extra tensors
                ignored), or a registered name.

        Returns:
            The encoder, in eval mode.

        Raises:
            CheckpointError: when the directory is missing, corrupt, of another kind, or
                its weights do not match its config.
        """
        if isinstance(directory, str):
            for loader in _NAME_LOADERS:
                found = loader(directory)
                if found is not None:
                    return found
        return load_pretrained(directory)[0]


def load_pretrained(
    directory: str | Path, kind: str = KIND
) -> tuple[LocationEncoder, dict[str, torch.Tensor], dict[str, Any]]:
    """Load a LocationEncoder checkpoint and whatever was stored beside it.

    Args:
        directory: checkpoint directory.
        kind: the ``"kind"`` the checkpoint must declare.

    Returns:
        (encoder in eval mode, extra tensors, the full ``config.json`` mapping).

    Raises:
        CheckpointError: when the directory is missing, corrupt, of another kind, or its
            weights do not match its config.
    """
    tensors, meta = load_checkpoint_dir(directory)
    model, extras = encoder_from_parts(tensors, meta, Path(directory) / "config.json", kind)
    return model, extras, meta


def encoder_from_parts(tensors: dict[str, torch.Tensor], meta: Any, where: Path,
                       kind: str = KIND) -> tuple[LocationEncoder, dict[str, torch.Tensor]]:
    """A LocationEncoder from a checkpoint's tensors and ``config.json`` mapping (:func:`load_pretrained`).

    Args:
        tensors: name -> tensor (the encoder's weights and whatever was stored beside them).
        meta: the parsed ``config.json``.
        where: the ``config.json`` path named in errors.
        kind: the ``"kind"`` the checkpoint must declare.

    Returns:
        (encoder in eval mode, the other tensors).

    Raises:
        CheckpointError: on another kind, an invalid config, or weights that do not match it.
    """
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        got = meta.get("kind") if isinstance(meta, dict) else None
        raise CheckpointError(f"{where}: expected a checkpoint of kind '{kind}', got {got!r}")
    try:  # on the meta device first: a config asking for huge weights is refused before any allocation
        with torch.device("meta"):
            own = LocationEncoder.from_dict(meta["config"]).state_dict()
    except (KeyError, TypeError, ValueError, OverflowError, ConfigError) as e:
        raise CheckpointError(f"{where}: invalid location-encoder config ({type(e).__name__}: {e})") from None
    missing = sorted(set(own) - set(tensors))
    if missing:
        raise CheckpointError(f"{where.parent}: weights lack '{missing[0]}' required by the config")
    bad = [k for k in own if tuple(own[k].shape) != tuple(tensors[k].shape)]
    if bad:
        raise CheckpointError(
            f"{where.parent}: weight '{bad[0]}' has shape {tuple(tensors[bad[0]].shape)}, "
            f"the config needs {tuple(own[bad[0]].shape)}"
        )
    model = LocationEncoder.from_dict(meta["config"])  # the stored weights have its shapes: it fits in memory
    try:
        model.load_state_dict({k: tensors[k] for k in own})
    except RuntimeError as e:  # e.g. a dtype that cannot be copied into the weights
        raise CheckpointError(f"{where.parent}: weights do not fit the config ({str(e).splitlines()[0]})") from None
    extras = {k: v for k, v in tensors.items() if k not in own}
    return model.eval(), extras
