"""Real spherical harmonics encoder (Rußwurm et al., ICLR 2024, arXiv 2310.06743).

Spec: peers.md §4. Y_lm for l = 0..L, m = −l..l, real and orthonormal on the unit sphere
(∫ Y_lm Y_l'm' dΩ = δ_ll' δ_mm'), with θ the colatitude (90° − φ) and the azimuth the
longitude λ:

    Y_l0  = P̄_l0(cos θ)
    Y_lm  = √2 P̄_lm(cos θ) cos(mλ)     (m > 0)
    Y_l,−m = √2 P̄_lm(cos θ) sin(mλ)     (m > 0)

P̄_lm are the associated Legendre functions normalised so that Y_l0 is orthonormal,
*without* the Condon–Shortley phase, so Y_00 = 1/(2√π) and (Y_1,−1, Y_10, Y_11) =
√(3/4π)·(y, z, x). Output index l² + l + m.

P̄_lm is computed by the standard stable recurrences on normalised values (no factorials):

    P̄_00 = 1/√(4π)
    P̄_ll = √((2l+1)/(2l)) sin θ P̄_{l−1,l−1}
    P̄_l,l−1 = √(2l+1) cos θ P̄_{l−1,l−1}
    P̄_lm = a_lm (cos θ P̄_{l−1,m} − b_lm P̄_{l−2,m}),
        a_lm = √((4l²−1)/(l²−m²)),  b_lm = √(((l−1)²−m²)/(4(l−1)²−1))

This stays finite in float32 up to at least L = 100, including at the poles, unlike the
reference's closed-form polynomials (locationencoder issue #1: NaNs above L ≈ 30).

``spherical_harmonics_satclip`` is the basis SatCLIP's released weights were trained on
(the analytic ``SH`` of the locationencoder code SatCLIP descends from): it evaluates Y_lm at
θ' = φ + 90° and λ' = λ + 180° instead of the colatitude and longitude, which multiplies
every Y_lm by (−1)^l, and its m = 0 constants are π times the orthonormal ones. So

    Y^satclip_lm = (−1)^l · (π if m = 0 else 1) · Y_lm,

checked against SatCLIP's own code for L ≤ 20 in tests/encoders/test_harmonics_satclip.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from geocsp.encoders.base import ENCODERS, PositionEncoder, as_input, lonlat_radians
from geocsp.errors import ConfigError


@dataclass(frozen=True)
class HarmonicsConfig:
    """Spherical-harmonics settings.

    Args:
        max_degree: L, the highest degree; the encoder has (L+1)² features.

    Raises:
        ConfigError: if L < 0.
    """

    max_degree: int = 10

    def __post_init__(self) -> None:
        if self.max_degree < 0:
            raise ConfigError(f"max_degree must be >= 0, got {self.max_degree}")


def legendre_coefficients(max_degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Recurrence coefficients a_lm, b_lm for 0 ≤ m ≤ l − 2 (zero elsewhere).

    Returns:
        Two (L+1, L+1) float64 tensors indexed [l, m].
    """
    size = max_degree + 1
    l_ = torch.arange(size, dtype=torch.float64)[:, None]
    m_ = torch.arange(size, dtype=torch.float64)[None, :]
    valid = m_ <= l_ - 2
    a = torch.sqrt((4 * l_**2 - 1) / torch.where(valid, l_**2 - m_**2, 1.0))
    b = torch.sqrt(torch.where(valid, (l_ - 1) ** 2 - m_**2, 0.0) / (4 * (l_ - 1) ** 2 - 1))
    return torch.where(valid, a, 0.0), torch.where(valid, b, 0.0)


def normalized_legendre(
    cos_t: torch.Tensor, sin_t: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> list[torch.Tensor]:
    """Normalised associated Legendre functions P̄_lm(cos θ), degree by degree.

    Args:
        cos_t: (B,) cos θ.
        sin_t: (B,) sin θ ≥ 0.
        a: (L+1, L+1) coefficients a_lm from :func:`legendre_coefficients`.
        b: (L+1, L+1) coefficients b_lm.

    Returns:
        L+1 tensors; entry l is (B, l+1) holding P̄_l0 … P̄_ll.
    """
    max_degree = a.shape[0] - 1
    c, s = cos_t[:, None], sin_t[:, None]
    # P̄_mm ∝ sin^m θ underflows near the poles; flushing it to 0 below this floor avoids
    # subnormal arithmetic (orders of magnitude slower on CPUs) and changes nothing
    # measurable: P̄_lm / P̄_mm stays far below 1/floor for l ≤ a few hundred.
    floor = torch.finfo(c.dtype).tiny * 2.0**24
    rows = [torch.full_like(c, 1.0 / math.sqrt(4.0 * math.pi))]
    for deg in range(1, max_degree + 1):
        last = rows[-1][:, -1:]
        parts = []
        if deg >= 2:
            m = deg - 1
            parts.append(a[deg, :m] * (c * rows[-1][:, :m] - b[deg, :m] * rows[-2]))
        parts.append(math.sqrt(2 * deg + 1) * c * last)
        diag = math.sqrt((2 * deg + 1) / (2 * deg)) * s * last
        parts.append(torch.where(diag.abs() < floor, 0.0, diag))
        rows.append(torch.cat(parts, dim=-1))
    return rows


def real_harmonics(lonlat: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real orthonormal spherical harmonics Y_lm, l = 0..L, in the dtype of ``lonlat``.

    Args:
        lonlat: (B, 2) longitude, latitude in degrees.
        a: (L+1, L+1) recurrence coefficients a_lm (dtype of ``lonlat``).
        b: (L+1, L+1) recurrence coefficients b_lm.

    Returns:
        (B, (L+1)²) features, index l² + l + m.
    """
    lam, phi = lonlat_radians(lonlat)
    # colatitude θ = π/2 − φ: cos θ = sin φ, sin θ = cos φ (≥ 0 for |φ| ≤ π/2)
    rows = normalized_legendre(torch.sin(phi), torch.cos(phi).clamp_min(0.0), a, b)
    max_degree = len(rows) - 1
    m = torch.arange(1, max_degree + 1, dtype=lonlat.dtype, device=lonlat.device)
    mlam = lam[:, None] * m
    cos_m, sin_m = math.sqrt(2.0) * torch.cos(mlam), math.sqrt(2.0) * torch.sin(mlam)
    out = []
    for deg, p in enumerate(rows):
        neg = (p[:, 1:] * sin_m[:, :deg]).flip(-1)
        pos = p[:, 1:] * cos_m[:, :deg]
        out.append(torch.cat((neg, p[:, :1], pos), dim=-1))
    return torch.cat(out, dim=-1)


@ENCODERS.register(
    "spherical_harmonics", aliases=("sh", "sphericalharmonics"), config=HarmonicsConfig
)
class SphericalHarmonics(PositionEncoder):
    """Real orthonormal spherical harmonics up to degree L; (L+1)² dims, for SIREN."""

    default_network = "siren"
    continuous_antimeridian = True
    pole_invariant = True
    spec_ref = "peers.md §4"

    def __init__(self, config: HarmonicsConfig) -> None:
        super().__init__(config)
        self.out_dim = (config.max_degree + 1) ** 2
        self._coef: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def coefficients(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a_lm, b_lm computed in float64, cast to the device and dtype of ``like`` (cached).

        They are deterministic, so they are not buffers (nothing to save in checkpoints).
        """
        key = (like.device, like.dtype)
        if key not in self._coef:
            a, b = legendre_coefficients(self.config.max_degree)
            self._coef[key] = (as_input(a, like), as_input(b, like))
        return self._coef[key]

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, (L+1)²) features."""
        return real_harmonics(lonlat, *self.coefficients(lonlat))


def satclip_scale(max_degree: int) -> torch.Tensor:
    """Per-feature factors (−1)^l · (π if m = 0 else 1) turning Y_lm into SatCLIP's basis.

    Args:
        max_degree: L.

    Returns:
        ((L+1)²,) float64, index l² + l + m.
    """
    parts = []
    for deg in range(max_degree + 1):
        row = torch.full((2 * deg + 1,), (-1.0) ** deg, dtype=torch.float64)
        row[deg] *= math.pi
        parts.append(row)
    return torch.cat(parts)


@ENCODERS.register(
    "spherical_harmonics_satclip", aliases=("sh_satclip", "satclip_sh"), config=HarmonicsConfig
)
class SatCLIPHarmonics(SphericalHarmonics):
    """SatCLIP's spherical-harmonics basis: (−1)^l · (π on m = 0) · Y_lm; (L+1)² dims.

    For SatCLIP weights (``geocsp convert satclip``): SatCLIP's ``legendre_polys`` is L + 1.
    """

    spec_ref = "peers.md §2, §4 (SatCLIP convention)"

    def __init__(self, config: HarmonicsConfig) -> None:
        super().__init__(config)
        self._scale: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, (L+1)²) features in SatCLIP's convention."""
        key = (lonlat.device, lonlat.dtype)
        if key not in self._scale:
            self._scale[key] = as_input(satclip_scale(self.config.max_degree), lonlat)
        return super().forward(lonlat) * self._scale[key]
