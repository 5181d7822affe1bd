"""Space2Vec encoders (Mai et al., ICLR 2020, arXiv 2003.00824): grid and theory.

Spec: csp.md §2. Like the CSP reference, ``grid`` and ``theory`` consume **degrees**: the
frequencies ω_s (radians per degree) multiply raw degrees. ``grid_rad``/``theory_rad``
convert to radians first.

Deviation from the reference: its ``gridcellnorm`` applies the degree→radian conversion
after the product is taken, which makes it a no-op (spec §9.2 item 2). Here that name is an
alias of ``grid_rad``, which implements the intended behaviour (radians *before* the
product); to reproduce the reference ``gridcellnorm`` features use ``grid``.

Phases ω_s·c on raw degrees reach ~2·10³ rad at r_min = 0.1°, where float32 resolves only
~10⁻⁴ rad. ``float64_phase=True`` (:class:`Space2VecConfig`) computes the phases and their
sin/cos in float64 from the float64 frequencies and casts the features back; that matches
peers computing in float64 (TorchSpatial) to < 1e-5. The default stays float32, which every
earlier run and checkpoint used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from geocsp.coords import deg2rad_t
from geocsp.encoders.base import (
    ENCODERS,
    MultiScaleEncoder,
    as_input,
    axis_sincos,
    sincos,
)
from geocsp.encoders.frequencies import FrequencyConfig

THEORY_DIRECTIONS = ((1.0, 0.0), (-0.5, math.sqrt(3.0) / 2.0), (-0.5, -math.sqrt(3.0) / 2.0))
"""The three unit vectors u_1, u_2, u_3 at 120° of the theory encoder."""


def grid_encode(coords: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Space2Vec grid: [sin ω_s c, cos ω_s c] for c ∈ (c_0, c_1), s = 0..S−1.

    Layout: coordinate-major, then frequency, then (sin, cos).

    Args:
        coords: (B, 2) coordinates (degrees for ``grid``, radians for ``grid_rad``).
        freqs: (S,) frequencies per coordinate unit.

    Returns:
        (B, 4S) features.
    """
    return axis_sincos(coords, freqs)


def theory_encode(coords: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Space2Vec theory: a_k = ⟨c, u_k⟩, per scale [sin ω_s a_k, cos ω_s a_k] for k = 1..3.

    Layout: frequency-major, then direction, then (sin, cos).

    Args:
        coords: (B, 2) coordinates (degrees for ``theory``, radians for ``theory_rad``).
        freqs: (S,) frequencies per coordinate unit.

    Returns:
        (B, 6S) features.
    """
    directions = coords.new_tensor(THEORY_DIRECTIONS)
    proj = coords @ directions.T
    return sincos(freqs[None, :, None] * proj[:, None, :])


@dataclass(frozen=True)
class Space2VecConfig(FrequencyConfig):
    """:class:`FrequencyConfig` plus the phase precision of the Space2Vec encoders.

    Args:
        float64_phase: compute phases and sin/cos in float64 (features cast back to the
            input dtype); for checkpoints converted from float64 peers. Not on devices
            without float64 (MPS).
    """

    float64_phase: bool = False


class _Space2Vec(MultiScaleEncoder):
    """Common forward: optionally convert degrees to radians, then ``encode``."""

    config: Space2VecConfig

    radians = False
    """Convert the coordinates to radians before the frequencies multiply them."""

    @staticmethod
    def encode(coords: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """(B, 2) coordinates, (S,) frequencies -> (B, out_dim) features."""
        raise NotImplementedError

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, out_dim) features (of radians if ``radians``)."""
        if getattr(self.config, "float64_phase", False):
            x = lonlat.to(torch.float64)
            coords = deg2rad_t(x) if self.radians else x
            freqs = self.config.frequencies().to(x.device)
            return self.encode(coords, freqs).to(lonlat.dtype)
        coords = deg2rad_t(lonlat) if self.radians else lonlat
        return self.encode(coords, as_input(self.freqs, lonlat))


@ENCODERS.register("grid", aliases=("gridcell", "Space2Vec-grid"), config=Space2VecConfig)
class Grid(_Space2Vec):
    """Space2Vec grid: multi-scale sin/cos of lon and lat in degrees; 4S dims."""

    features_per_scale = 4
    encode = staticmethod(grid_encode)


@ENCODERS.register("grid_rad", aliases=("gridcellnorm",), config=Space2VecConfig)
class GridRad(Grid):
    """Space2Vec grid on radians (the intended, non-buggy gridcellnorm); 4S dims."""

    radians = True


@ENCODERS.register("theory", aliases=("Space2Vec-theory",), config=Space2VecConfig)
class Theory(_Space2Vec):
    """Space2Vec theory: sin/cos of projections on three 120° directions, degrees; 6S dims."""

    features_per_scale = 6
    encode = staticmethod(theory_encode)


@ENCODERS.register("theory_rad", aliases=("theorynorm",), config=Space2VecConfig)
class TheoryRad(Theory):
    """Space2Vec theory on coordinates converted to radians (reference theorynorm); 6S dims."""

    radians = True
