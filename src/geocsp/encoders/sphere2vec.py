"""Sphere2Vec encoders (Mai et al., ISPRS 2023, arXiv 2201.10489).

The family: sphereC, sphereC+, sphereM, sphereM+ and dfs.

Spec: csp.md §2, table "Encoders NOT in the CSP repo". Notation: λ_s = ω_s·λ·π/180 (the
frequency multiplies degrees, then the result is converted to radians), λ_1 = λ·π/180;
φ_s, φ_1 likewise. Layouts are scale-major: for each s the per-scale features of the table
in the order given there, i.e. output index = s · F + f.

Continuity: the multi-scale terms sin λ_s are continuous across the antimeridian and
λ-independent at the poles only when ω_s is an integer (odd, for the poles), which the
geometric schedule does not give; so, unlike xyz, these encoders are *not* continuous at
±180° nor λ-invariant at the poles in general (verified by the tests).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from geocsp.encoders.base import ENCODERS, MultiScaleEncoder, as_input, lonlat_radians
from geocsp.encoders.frequencies import FrequencyConfig


class SphereTrig(NamedTuple):
    """Sines and cosines shared by the Sphere2Vec encoders; each (B, S) or (B, 1)."""

    sin_phi_s: torch.Tensor
    cos_phi_s: torch.Tensor
    sin_lam_s: torch.Tensor
    cos_lam_s: torch.Tensor
    sin_lam_1: torch.Tensor
    cos_lam_1: torch.Tensor
    cos_phi_1: torch.Tensor

    def grid(self) -> tuple[torch.Tensor, ...]:
        """The grid terms [sin φ_s, cos φ_s, sin λ_s, cos λ_s], each (B, S)."""
        return self.sin_phi_s, self.cos_phi_s, self.sin_lam_s, self.cos_lam_s

    def mixed_c(self) -> tuple[torch.Tensor, ...]:
        """Terms of sphereC [cos φ_s cos λ_s, cos φ_s sin λ_s], each (B, S)."""
        return self.cos_phi_s * self.cos_lam_s, self.cos_phi_s * self.sin_lam_s

    def mixed_m(self) -> tuple[torch.Tensor, ...]:
        """Scale-mixing terms of sphereM, each (B, S).

        [cos φ_s cos λ_1, cos φ_1 cos λ_s, cos φ_s sin λ_1, cos φ_1 sin λ_s].
        """
        return (
            self.cos_phi_s * self.cos_lam_1,
            self.cos_phi_1 * self.cos_lam_s,
            self.cos_phi_s * self.sin_lam_1,
            self.cos_phi_1 * self.sin_lam_s,
        )


def sphere_trig(lonlat: torch.Tensor, freqs: torch.Tensor) -> SphereTrig:
    """Compute the multi-scale (λ_s, φ_s) and single-scale (λ_1, φ_1) trig terms.

    Args:
        lonlat: (B, 2) longitude, latitude in degrees.
        freqs: (S,) frequencies ω_s.

    Returns:
        :class:`SphereTrig`; multi-scale fields are (B, S), single-scale fields (B, 1).
    """
    lam, phi = lonlat_radians(lonlat)
    lam_1, phi_1 = lam[:, None], phi[:, None]
    lam_s, phi_s = lam_1 * freqs, phi_1 * freqs
    return SphereTrig(
        torch.sin(phi_s),
        torch.cos(phi_s),
        torch.sin(lam_s),
        torch.cos(lam_s),
        torch.sin(lam_1),
        torch.cos(lam_1),
        torch.cos(phi_1),
    )


def stack_scales(*features: torch.Tensor) -> torch.Tensor:
    """Stack F per-scale (B, S) features scale-major into (B, F·S) (broadcasting (B, 1))."""
    full = torch.broadcast_tensors(*features)
    return torch.stack(full, dim=-1).flatten(1)


class _SphereEncoder(MultiScaleEncoder):
    """Common forward: compute :class:`SphereTrig` once, then ``features``."""

    spec_ref = "csp.md §2 (sphere2vec table)"

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, out_dim) features."""
        return self.features(sphere_trig(lonlat, as_input(self.freqs, lonlat)))

    @staticmethod
    def features(t: SphereTrig) -> torch.Tensor:  # pragma: no cover - abstract
        """Combine the trig terms into (B, out_dim) features."""
        raise NotImplementedError


@ENCODERS.register("sphereC", aliases=("sphere",), config=FrequencyConfig)
class SphereC(_SphereEncoder):
    """Sphere2Vec sphereC: per scale [sin φ_s, cos φ_s cos λ_s, cos φ_s sin λ_s]; 3S dims."""

    features_per_scale = 3

    @staticmethod
    def features(t: SphereTrig) -> torch.Tensor:
        """(B, 3S) features."""
        return stack_scales(t.sin_phi_s, *t.mixed_c())


@ENCODERS.register("sphereC+", aliases=("spheregrid",), config=FrequencyConfig)
class SphereCPlus(_SphereEncoder):
    """Sphere2Vec sphereC+: sphereC terms plus grid terms of φ_s and λ_s; 6S dims."""

    features_per_scale = 6

    @staticmethod
    def features(t: SphereTrig) -> torch.Tensor:
        """(B, 6S) features [sin φ_s, cos φ_s, sin λ_s, cos λ_s, cos φ_s cos λ_s, cos φ_s sin λ_s]."""
        return stack_scales(*t.grid(), *t.mixed_c())


@ENCODERS.register("sphereM", aliases=("spheremixscale",), config=FrequencyConfig)
class SphereM(_SphereEncoder):
    """Sphere2Vec sphereM: multi-scale φ (λ) mixed with single-scale λ (φ); 5S dims."""

    features_per_scale = 5

    @staticmethod
    def features(t: SphereTrig) -> torch.Tensor:
        """(B, 5S) features [sin φ_s, cos φ_s cos λ_1, cos φ_1 cos λ_s, cos φ_s sin λ_1, cos φ_1 sin λ_s]."""
        return stack_scales(t.sin_phi_s, *t.mixed_m())


@ENCODERS.register("sphereM+", aliases=("spheregridmixscale",), config=FrequencyConfig)
class SphereMPlus(_SphereEncoder):
    """Sphere2Vec sphereM+: sphereM mixed terms plus grid terms of φ_s and λ_s; 8S dims."""

    features_per_scale = 8

    @staticmethod
    def features(t: SphereTrig) -> torch.Tensor:
        """(B, 8S) features: the grid terms, then sphereM's mixed terms."""
        return stack_scales(*t.grid(), *t.mixed_m())


@ENCODERS.register("dfs", aliases=("dft",), config=FrequencyConfig)
class DFS(_SphereEncoder):
    """Double Fourier sphere: all {sin, cos}(λ_i)·{sin, cos}(φ_j) plus grid terms; 4S²+4S dims.

    Layout: first the 4S per-scale terms [sin φ_s, cos φ_s, sin λ_s, cos λ_s] (scale-major),
    then the 4S² products: the outer product of u = [sin λ_0, cos λ_0, sin λ_1, …] and
    v = [sin φ_0, cos φ_0, sin φ_1, …], row-major (index (2i + a)·2S + 2j + c). The
    reference layout of the product block is not specified; this order is geocsp's.
    """

    @classmethod
    def dim_for(cls, num_scales: int) -> int:
        """4S² + 4S."""
        return 4 * num_scales * num_scales + 4 * num_scales

    @staticmethod
    def features(t: SphereTrig) -> torch.Tensor:
        """(B, 4S² + 4S) features."""
        singles = stack_scales(*t.grid())
        lam = torch.stack((t.sin_lam_s, t.cos_lam_s), dim=-1).flatten(1)
        phi = torch.stack((t.sin_phi_s, t.cos_phi_s), dim=-1).flatten(1)
        prods = (lam[:, :, None] * phi[:, None, :]).flatten(1)
        return torch.cat((singles, prods), dim=-1)
