"""SatCLIP's spherical-harmonics basis (``spherical_harmonics_satclip``) against SatCLIP's own code.

The oracle is ``rangegeo.satclip.positional_encoding.SphericalHarmonics`` (SatCLIP's location
encoder as shipped in the ``rangegeo`` wheel, analytic SymPy ``Ylm``), run only where
``rangegeo`` is installed (``make install-test``).
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from tests.pretrained.peers import (
    SATCLIP_STUBS,
    installed,
    max_abs_diff,
    peer_modules,
    sphere_points,
)

from geocsp.encoders import create_encoder
from geocsp.encoders.harmonics import satclip_scale


def test_scale_is_sign_per_degree_and_pi_on_m0() -> None:
    scale = satclip_scale(2)
    # l = 0: m=0; l = 1: m=-1,0,1; l = 2: m=-2..2 (index l^2 + l + m)
    expected = [math.pi, -1.0, -math.pi, -1.0, 1.0, 1.0, math.pi, 1.0, 1.0]
    torch.testing.assert_close(scale, torch.tensor(expected, dtype=torch.float64))


def test_low_degrees_in_closed_form() -> None:
    lonlat = sphere_points(torch.float64)[:50]
    lam, phi = torch.deg2rad(lonlat[:, 0]), torch.deg2rad(lonlat[:, 1])
    y = create_encoder("spherical_harmonics_satclip", max_degree=1)(lonlat)
    c = math.sqrt(3.0 / (4.0 * math.pi))
    torch.testing.assert_close(y[:, 0], torch.full_like(phi, math.sqrt(math.pi) / 2.0))  # π·Y00
    torch.testing.assert_close(y[:, 1], -c * torch.cos(phi) * torch.sin(lam))
    torch.testing.assert_close(y[:, 2], -math.pi * c * torch.sin(phi))
    torch.testing.assert_close(y[:, 3], -c * torch.cos(phi) * torch.cos(lam))


@pytest.mark.skipif(not installed("rangegeo"), reason="rangegeo (SatCLIP's encoder) is not installed")
@pytest.mark.parametrize("legendre_polys", [10, 20])
def test_equals_satclip_analytic_harmonics(legendre_polys: int) -> None:
    """Equal within 1e-8 in float64 up to L = 20; above, SatCLIP's closed-form polynomials lose
    digits to cancellation (L = 40: up to ~1e-2 for l ≥ 35, docs/pretrained.md)."""
    with peer_modules("rangegeo", SATCLIP_STUBS):
        pe = importlib.import_module("rangegeo.satclip.positional_encoding")
        ref = pe.SphericalHarmonics(legendre_polys=legendre_polys)
        lonlat = sphere_points(torch.float64)
        expected = ref(lonlat)
    ours = create_encoder("sh_satclip", max_degree=legendre_polys - 1)
    got = ours(lonlat)
    assert got.shape == expected.shape == (len(lonlat), legendre_polys**2)
    assert max_abs_diff(got, expected) < 1e-8
