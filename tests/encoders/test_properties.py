"""Geometric properties each encoder declares (class attributes), checked both ways.

``continuous_antimeridian``: PE(180° − ε, φ) ≈ PE(−180° + ε, φ).
``pole_invariant``: PE(λ, ±90°) does not depend on λ.
A declared property must hold (to 1e-6); an undeclared one must visibly fail (> 1e-2) for
the default configuration, so the docs table generated from these flags is true.
Computed in float64 with ε = 1e-11° (nerf's finest band has slope ≈ 1.8e3 per degree).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.encoders import create_encoder, list_encoders

EPS_DEG = 1e-11
LATS = np.array([-60.0, -10.0, 0.0, 33.0, 75.0])
LONS = np.linspace(-180.0, 180.0, 13)


def antimeridian_pairs() -> tuple[np.ndarray, np.ndarray]:
    east = np.column_stack((np.full_like(LATS, 180.0 - EPS_DEG), LATS))
    west = np.column_stack((np.full_like(LATS, -180.0 + EPS_DEG), LATS))
    return east, west


def pole_rings() -> list[np.ndarray]:
    return [np.column_stack((LONS, np.full_like(LONS, pole))) for pole in (90.0, -90.0)]


def build(name: str) -> torch.nn.Module:
    """The default encoder; RBF anchors are put on the probe points so kernels respond."""
    enc = create_encoder(name)
    if hasattr(enc, "set_anchors"):
        probes = np.concatenate((*antimeridian_pairs(), *pole_rings()))
        enc.set_anchors(np.resize(probes, (enc.out_dim, 2)))
    return enc


def encode(enc: torch.nn.Module, pts: np.ndarray) -> np.ndarray:
    return enc(torch.from_numpy(pts)).numpy()


@pytest.mark.parametrize("name", list_encoders())
def test_antimeridian_continuity_claim(name: str) -> None:
    enc = build(name)
    east, west = antimeridian_pairs()
    gap = np.abs(encode(enc, east) - encode(enc, west)).max()
    if enc.continuous_antimeridian:
        assert gap < 1e-6
    else:
        assert gap > 1e-2, f"{name} is continuous at ±180°; declare continuous_antimeridian"


@pytest.mark.parametrize("name", list_encoders())
def test_pole_invariance_claim(name: str) -> None:
    enc = build(name)
    spread = max(np.abs(out - out[:1]).max() for out in (encode(enc, r) for r in pole_rings()))
    if enc.pole_invariant:
        assert spread < 1e-6
    else:
        assert spread > 1e-2, f"{name} is λ-invariant at the poles; declare pole_invariant"


@pytest.mark.parametrize("name", ["xyz", "nerf", "spherical_harmonics", "wrap"])
def test_continuous_claims_hold_in_float32(name: str) -> None:
    """The same in float32 at the exact seam ±180° (nerf's finest bands need float64)."""
    enc = create_encoder(name, **({"num_scales": 8} if name == "nerf" else {}))
    lats = torch.tensor(LATS, dtype=torch.float32)
    east = enc(torch.stack((torch.full_like(lats, 180.0), lats), dim=-1))
    west = enc(torch.stack((torch.full_like(lats, -180.0), lats), dim=-1))
    assert (east - west).abs().max() < 2e-4
