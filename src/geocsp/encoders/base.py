"""Position-encoder base class, the ``ENCODERS`` registry and shared tensor helpers.

Notation: B batch size, S number of scales. Every encoder takes ``(B, 2)`` longitude,
latitude in **degrees** and returns ``(B, out_dim)`` features in the input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from geocsp._registry import Registry
from geocsp.coords import deg2rad_t
from geocsp.encoders.frequencies import FrequencyConfig

ENCODERS: Registry[Any] = Registry("encoder")
"""Registry of position encoders; keys are paper names, reference-code names are aliases."""


@dataclass(frozen=True)
class NoConfig:
    """Config of an encoder without hyper-parameters (direct, wrap, xyz)."""


class PositionEncoder(nn.Module):
    """Base class: a fixed (non-trainable) map from (lon, lat) degrees to features.

    Subclasses set ``self.out_dim`` in ``__init__`` and implement :meth:`forward`.
    Random quantities (frequencies, anchors) are seeded from the config and stored as
    buffers so that checkpoints hold them. Encoders have no trainable parameters.

    Class attributes:
        default_network: name of the network (``geocsp.nets`` registry) used when a
            ``LocationEncoder`` does not name one.
        continuous_antimeridian: PE(180° − ε, φ) → PE(−180° + ε, φ) as ε → 0 for every
            configuration (checked by the tests).
        pole_invariant: PE(λ, ±90°) does not depend on λ (checked by the tests).
        spec_ref: where the formula is specified.

    Args:
        config: the encoder's frozen config dataclass.
    """

    default_network: ClassVar[str] = "ffn"
    continuous_antimeridian: ClassVar[bool] = False
    pole_invariant: ClassVar[bool] = False
    spec_ref: ClassVar[str] = "csp.md §2"

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.out_dim: int = 0

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Encode locations.

        Args:
            lonlat: (B, 2) longitude, latitude in degrees, floating point.

        Returns:
            (B, out_dim) features, same dtype as ``lonlat``.
        """
        raise NotImplementedError

    def extra_repr(self) -> str:
        """The ``out_dim=...`` part of the module's repr."""
        return f"out_dim={self.out_dim}"


class MultiScaleEncoder(PositionEncoder):
    """Base of the encoders built on a frequency schedule (grid, theory, sphere2vec).

    The (S,) frequencies are computed once from the config and stored as the ``freqs``
    buffer; ``out_dim`` is :meth:`dim_for` (S).

    Args:
        config: frequency settings.
    """

    features_per_scale: ClassVar[int] = 0
    freqs: torch.Tensor

    def __init__(self, config: FrequencyConfig) -> None:
        super().__init__(config)
        register_buffer64(self, "freqs", config.frequencies())
        self.out_dim = self.dim_for(config.num_scales)

    @classmethod
    def dim_for(cls, num_scales: int) -> int:
        """Output dimension for S = ``num_scales``."""
        return cls.features_per_scale * num_scales


def register_buffer64(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Register a float64-computed quantity as a buffer in the default float dtype.

    Buffers stay in the default dtype (float32) so that modules move to any device,
    including those without float64; :func:`as_input` casts them per call.
    """
    module.register_buffer(name, value.to(torch.get_default_dtype()))


def as_input(buf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``buf`` on the device and in the dtype of ``x``."""
    return buf.to(device=x.device, dtype=x.dtype)


def sincos(phase: torch.Tensor) -> torch.Tensor:
    """Interleave sin and cos of ``phase`` along a new last axis, flattened from dim 1.

    Args:
        phase: (B, ...) phases in radians.

    Returns:
        (B, 2 · prod(...)) features ``[sin p0, cos p0, sin p1, cos p1, ...]`` in
        row-major order of the trailing axes.
    """
    return torch.stack((torch.sin(phase), torch.cos(phase)), dim=-1).flatten(1)


def axis_sincos(coords: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Multi-scale sin/cos of each coordinate axis.

    Args:
        coords: (B, A) coordinates.
        freqs: (S,) frequencies per coordinate unit.

    Returns:
        (B, 2·A·S) features, axis-major, then frequency, then (sin, cos).
    """
    return sincos(coords[:, :, None] * freqs)


def lonlat_radians(lonlat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (B, 2) degrees into (B,) longitude and (B,) latitude in radians."""
    rad = deg2rad_t(lonlat)
    return rad[:, 0], rad[:, 1]


def unit_xyz(lonlat: torch.Tensor) -> torch.Tensor:
    """(B, 2) degrees -> (B, 3) unit vectors [cos φ cos λ, cos φ sin λ, sin φ]."""
    lam, phi = lonlat_radians(lonlat)
    c = torch.cos(phi).clamp_min(0.0)  # exactly 0 at ±90° despite rounding of π/2
    return torch.stack((c * torch.cos(lam), c * torch.sin(lam), torch.sin(phi)), dim=-1)
