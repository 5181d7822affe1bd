"""Single-scale encoders: direct, wrap (Mac Aodha et al. 2019), wrap + FFN and xyz.

Spec: csp.md §2 (``naive``, ``geo_net``, ``geo_net_fft``) and the sphere2vec table (``xyz``).
"""

from __future__ import annotations

import math

import torch

from geocsp.encoders.base import ENCODERS, NoConfig, PositionEncoder, unit_xyz


def direct_encode(lonlat: torch.Tensor) -> torch.Tensor:
    """Min-max normalise to [-1, 1]: [λ/180, φ/90].

    Args:
        lonlat: (B, 2) longitude, latitude in degrees.

    Returns:
        (B, 2) normalised coordinates.
    """
    scale = lonlat.new_tensor([1.0 / 180.0, 1.0 / 90.0])
    return lonlat * scale


def wrap_encode(lonlat: torch.Tensor) -> torch.Tensor:
    """Mac Aodha et al. wrap: [sin(πλ/180), sin(πφ/90), cos(πλ/180), cos(πφ/90)].

    Latitude is wrapped over a full 2π period (φ/90·π), exactly as the reference.

    Args:
        lonlat: (B, 2) longitude, latitude in degrees.

    Returns:
        (B, 4) features.
    """
    phase = direct_encode(lonlat) * math.pi
    return torch.cat((torch.sin(phase), torch.cos(phase)), dim=-1)


@ENCODERS.register("direct", aliases=("naive",), config=NoConfig)
class Direct(PositionEncoder):
    """Raw coordinates scaled to [-1, 1] (λ/180, φ/90); 2 dims."""

    def __init__(self, config: NoConfig) -> None:
        super().__init__(config)
        self.out_dim = 2

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, 2) normalised coordinates."""
        return direct_encode(lonlat)


@ENCODERS.register("wrap", aliases=("geo_net",), config=NoConfig)
class Wrap(PositionEncoder):
    """Mac Aodha wrap [sin λ, sin 2φ, cos λ, cos 2φ] with the residual FCNet; 4 dims."""

    default_network = "fcnet"
    continuous_antimeridian = True

    def __init__(self, config: NoConfig) -> None:
        super().__init__(config)
        self.out_dim = 4

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, 4) wrap features."""
        return wrap_encode(lonlat)


@ENCODERS.register("wrap_ffn", aliases=("geo_net_fft",), config=NoConfig)
class WrapFFN(Wrap):
    """The wrap features followed by the Space2Vec FFN instead of the FCNet; 4 dims."""

    default_network = "ffn"


@ENCODERS.register("xyz", config=NoConfig)
class XYZ(PositionEncoder):
    """Unit-sphere Cartesian coordinates [cos φ cos λ, cos φ sin λ, sin φ]; 3 dims."""

    continuous_antimeridian = True
    pole_invariant = True

    def __init__(self, config: NoConfig) -> None:
        super().__init__(config)
        self.out_dim = 3

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, 3) unit vectors."""
        return unit_xyz(lonlat)
