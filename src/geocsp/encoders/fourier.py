"""Fourier-feature and kernel encoders: NeRF, RBF, RFF and GeoCLIP.

Spec: csp.md §2 (``rbf``, ``rff``; ``nerf`` in the sphere2vec table) and peers.md §1 (GeoCLIP).
All random quantities are drawn from a ``torch.Generator`` seeded with ``config.seed`` and
stored as buffers, so they are saved in checkpoints (the reference draws them unseeded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from geocsp.coords import validate_lonlat
from geocsp.encoders.base import (
    ENCODERS,
    PositionEncoder,
    as_input,
    axis_sincos,
    register_buffer64,
    unit_xyz,
)
from geocsp.encoders.frequencies import nerf_frequencies
from geocsp.encoders.simple import direct_encode
from geocsp.errors import ConfigError

NERF_MAX_SCALES = 32


@dataclass(frozen=True)
class NerfConfig:
    """NeRF encoder settings.

    Args:
        num_scales: S bands with ω_l = π·2^l, l = 0..S−1. The default 16 makes the finest
            band's wavelength 2/2^15 Earth radii (≈ 0.39 km); its float32 phase error
            (≈ 1e-2 rad) corresponds to the float32 resolution of a location (≈ 0.5 m).

    Raises:
        ConfigError: unless 1 ≤ S ≤ 32.
    """

    num_scales: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.num_scales <= NERF_MAX_SCALES:
            raise ConfigError(
                f"num_scales must be in [1, {NERF_MAX_SCALES}] for nerf, got {self.num_scales}"
            )


@ENCODERS.register("nerf", config=NerfConfig)
class Nerf(PositionEncoder):
    """NeRF positional encoding of the unit vector: sin/cos(π·2^l·axis); 6S dims.

    Layout: axis (x, y, z)-major, then l, then (sin, cos). Spec: csp.md §2 sphere2vec table.
    """

    continuous_antimeridian = True
    pole_invariant = True
    spec_ref = "csp.md §2 (sphere2vec table)"

    freqs: torch.Tensor

    def __init__(self, config: NerfConfig) -> None:
        super().__init__(config)
        register_buffer64(self, "freqs", nerf_frequencies(config.num_scales))
        self.out_dim = 6 * config.num_scales

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, 6S) features."""
        return axis_sincos(unit_xyz(lonlat), as_input(self.freqs, lonlat))


@dataclass(frozen=True)
class RBFConfig:
    """RBF encoder settings.

    Args:
        num_anchors: K anchor locations (reference default 200).
        sigma_deg: kernel width σ in degrees (reference ``rbf_kernal_size``, default 1.0).
        seed: seed of the default anchors (uniform on the sphere).

    Raises:
        ConfigError: if K < 1 or σ ≤ 0.
    """

    num_anchors: int = 200
    sigma_deg: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_anchors < 1:
            raise ConfigError(f"num_anchors must be >= 1, got {self.num_anchors}")
        if not self.sigma_deg > 0:
            raise ConfigError(f"sigma_deg must be > 0, got {self.sigma_deg}")


def sphere_uniform_lonlat(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on the sphere, (n, 2) float64 degrees."""
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    lon = u[:, 0] * 360.0 - 180.0
    lat = torch.rad2deg(torch.asin(2.0 * u[:, 1] - 1.0))
    return torch.stack((lon, lat), dim=-1)


def rbf_encode(lonlat: torch.Tensor, anchors: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian kernel exp(−‖x − a_k‖² / (2σ²)) with Euclidean distance in lon/lat degrees.

    Args:
        lonlat: (B, 2) degrees.
        anchors: (K, 2) degrees.
        sigma: kernel width in degrees.

    Returns:
        (B, K) features in (0, 1].
    """
    d2 = (lonlat[:, :1] - anchors[:, 0]).square() + (lonlat[:, 1:] - anchors[:, 1]).square()
    return torch.exp(d2 * (-0.5 / (sigma * sigma)))


@ENCODERS.register("rbf", config=RBFConfig)
class RBF(PositionEncoder):
    """Gaussian RBF kernels around K anchor locations (σ in degrees); K dims.

    Default anchors are drawn uniformly on the sphere (seeded). The reference uses random
    training locations; pass them with :meth:`set_anchors`.
    """

    anchors: torch.Tensor

    def __init__(self, config: RBFConfig) -> None:
        super().__init__(config)
        gen = torch.Generator().manual_seed(config.seed)
        register_buffer64(self, "anchors", sphere_uniform_lonlat(config.num_anchors, gen))
        self.out_dim = config.num_anchors

    def set_anchors(self, lonlat: Any) -> None:
        """Replace the anchors, e.g. with K randomly chosen training locations.

        Args:
            lonlat: (K, 2) longitude, latitude in degrees (array-like or tensor).

        Raises:
            CoordinateError: on invalid coordinates.
            ConfigError: if the number of rows is not ``num_anchors``.
        """
        if isinstance(lonlat, torch.Tensor):
            lonlat = lonlat.detach().cpu().numpy()
        arr = validate_lonlat(lonlat, source="rbf anchors")
        if arr.shape[0] != self.out_dim:
            raise ConfigError(
                f"rbf anchors: expected {self.out_dim} rows (num_anchors), got {arr.shape[0]}"
            )
        self.anchors.copy_(torch.from_numpy(arr))

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, K) kernel values."""
        return rbf_encode(lonlat, as_input(self.anchors, lonlat), self.config.sigma_deg)


@dataclass(frozen=True)
class RFFConfig:
    """Random Fourier feature settings.

    Args:
        num_features: D output features (reference ``frequency_num``).
        variance: variance of W ~ N(0, variance·I) (reference ``rbf_kernal_size``; the spec
            notes the reference treats this value as a variance, not a standard deviation).
        seed: seed of W and b.

    Raises:
        ConfigError: if D < 1 or variance ≤ 0.
    """

    num_features: int = 256
    variance: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_features < 1:
            raise ConfigError(f"num_features must be >= 1, got {self.num_features}")
        if not self.variance > 0:
            raise ConfigError(f"variance must be > 0, got {self.variance}")


@ENCODERS.register("rff", config=RFFConfig)
class RFF(PositionEncoder):
    """Random Fourier features √(2/D)·cos(x̃W + b) of [-1, 1]-normalised lon/lat; D dims."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, config: RFFConfig) -> None:
        super().__init__(config)
        gen = torch.Generator().manual_seed(config.seed)
        d = config.num_features
        weight = torch.randn(2, d, generator=gen, dtype=torch.float64) * math.sqrt(config.variance)
        bias = torch.rand(d, generator=gen, dtype=torch.float64) * (2.0 * math.pi)
        register_buffer64(self, "weight", weight)
        register_buffer64(self, "bias", bias)
        self.out_dim = d

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, D) features."""
        phase = direct_encode(lonlat) @ as_input(self.weight, lonlat) + as_input(self.bias, lonlat)
        return math.sqrt(2.0 / self.out_dim) * torch.cos(phase)


EQUAL_EARTH_A = (1.340264, -0.081106, 0.000893, 0.003796)
"""Equal Earth polynomial coefficients A1..A4 (Šavrič, Patterson & Jenny 2018)."""
GEOCLIP_SF = 66.50336
"""GeoCLIP's scale factor SF; x·SF/180 maps the Equal Earth x range to [-1, 1]."""


def equal_earth(lonlat: torch.Tensor) -> torch.Tensor:
    """Equal Earth projection, scaled as GeoCLIP (x ∈ [-1, 1], y ∈ [-0.49, 0.49]).

    sin θ = (√3/2) sin φ; x = 2√3 λ cos θ / (3(9A4θ⁸ + 7A3θ⁶ + 3A2θ² + A1));
    y = A4θ⁹ + A3θ⁷ + A2θ³ + A1θ; both multiplied by SF and then divided by 180.

    The float operations follow GeoCLIP's ``equal_earth_projection`` one for one (√3 in the
    input dtype, powers of θ, the scale applied as ``·SF / 180``), so that in float32 the
    projection is bit-identical to GeoCLIP's: the σ = 256 branch multiplies it by up to
    ≈ 5·10³ rad, where one float32 ulp of the input moves a feature by ≈ 10⁻³.

    Args:
        lonlat: (B, 2) longitude, latitude in degrees (GeoCLIP itself takes (lat, lon)).

    Returns:
        (B, 2) projected (x, y), dtype of ``lonlat``.
    """
    a1, a2, a3, a4 = EQUAL_EARTH_A
    lam = torch.deg2rad(lonlat[:, 0])
    root3 = torch.tensor(3.0, dtype=lonlat.dtype, device=lonlat.device).sqrt()
    theta = torch.asin(root3 / 2 * torch.sin(torch.deg2rad(lonlat[:, 1])))
    denom = 3 * (9 * a4 * theta**8 + 7 * a3 * theta**6 + 3 * a2 * theta**2 + a1)
    x = (2 * root3 * lam * torch.cos(theta)) / denom
    y = a4 * theta**9 + a3 * theta**7 + a2 * theta**3 + a1 * theta
    return (torch.stack((x, y), dim=-1) * GEOCLIP_SF) / 180


@dataclass(frozen=True)
class GeoCLIPConfig:
    """GeoCLIP position-encoding settings (peers.md §1).

    Args:
        sigmas: one Gaussian RFF branch per σ (GeoCLIP: 2^0, 2^4, 2^8).
        num_features: frequencies per branch (GeoCLIP 256, giving 512 dims per branch).
        seed: seed of the random frequencies.

    Raises:
        ConfigError: if there is no σ, a σ ≤ 0, or num_features < 1.
    """

    sigmas: tuple[float, ...] = (1.0, 16.0, 256.0)
    num_features: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sigmas:
            raise ConfigError("sigmas must hold at least one value")
        if any(not s > 0 for s in self.sigmas):
            raise ConfigError(f"sigmas must all be > 0, got {list(self.sigmas)}")
        if self.num_features < 1:
            raise ConfigError(f"num_features must be >= 1, got {self.num_features}")


@ENCODERS.register("geoclip", config=GeoCLIPConfig)
class GeoCLIP(PositionEncoder):
    """GeoCLIP: Equal Earth projection, then one Gaussian RFF branch per σ; 512 dims each.

    Branch n maps the projected p to [cos(2π p·B_nᵀ), sin(2π p·B_nᵀ)] with
    B_n ~ N(0, σ_n²) of shape (F, 2); the output concatenates the branches, so a
    ``multibranch`` network can split it into ``branches`` equal chunks, run one MLP per
    chunk and sum, as GeoCLIP does. Spec: peers.md §1 (Vivanco Cepeda et al., NeurIPS 2023,
    arXiv 2309.16020).
    """

    default_network = "multibranch"
    spec_ref = "peers.md §1"

    freqs: torch.Tensor

    def __init__(self, config: GeoCLIPConfig) -> None:
        super().__init__(config)
        gen = torch.Generator().manual_seed(config.seed)
        n, f = len(config.sigmas), config.num_features
        sig = torch.tensor(config.sigmas, dtype=torch.float64)
        freqs = torch.randn(n, f, 2, generator=gen, dtype=torch.float64) * sig[:, None, None]
        register_buffer64(self, "freqs", freqs)
        self.branches = n
        self.out_dim = 2 * n * f

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, branches · 2F) features, per branch [cos (F), sin (F)].

        The phase is (2π·p)·Bᵀ in that order, as GeoCLIP's ``gaussian_encoding`` computes it:
        in float32 the order of the two roundings decides the σ = 256 features to ≈ 10⁻³.
        """
        proj = (2.0 * math.pi) * equal_earth(lonlat)
        phase = torch.einsum("bk,nfk->bnf", proj, as_input(self.freqs, lonlat))
        return torch.cat((torch.cos(phase), torch.sin(phase)), dim=-1).flatten(1)
