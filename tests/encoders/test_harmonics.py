"""Real spherical harmonics (peers.md §4): closed forms, SciPy reference, orthonormality,
float32 stability at L = 100."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import gammaln, lpmv, sph_harm_y

from geocsp.encoders import create_encoder


def ref_real_sh(p: np.ndarray, max_degree: int) -> np.ndarray:
    """Independent reference: SciPy's lpmv (with Condon–Shortley phase, removed here) and
    log-gamma normalisation √((2l+1)/4π · (l−m)!/(l+m)!)."""
    lam, colat = np.radians(p[:, 0]), np.radians(90.0 - p[:, 1])
    cols = []
    for l_ in range(max_degree + 1):
        for m in range(-l_, l_ + 1):
            am = abs(m)
            norm = np.sqrt((2 * l_ + 1) / (4 * np.pi)) * np.exp(
                0.5 * (gammaln(l_ - am + 1) - gammaln(l_ + am + 1))
            )
            plm = (-1) ** am * lpmv(am, l_, np.cos(colat)) * norm
            if m == 0:
                cols.append(plm)
            elif m > 0:
                cols.append(np.sqrt(2) * plm * np.cos(am * lam))
            else:
                cols.append(np.sqrt(2) * plm * np.sin(am * lam))
    return np.column_stack(cols)


def ref_real_sh_complex(p: np.ndarray, max_degree: int) -> np.ndarray:
    """Second reference from SciPy's complex Y_l^m (stable at high degree):
    real Y_lm = √2 (−1)^m Re Y_l^m, Y_l,−m = √2 (−1)^m Im Y_l^m, Y_l0 = Re Y_l^0."""
    ls = np.concatenate([np.full(2 * l_ + 1, l_) for l_ in range(max_degree + 1)])
    ms = np.concatenate([np.arange(-l_, l_ + 1) for l_ in range(max_degree + 1)])
    colat, lam = np.radians(90.0 - p[:, 1])[:, None], np.radians(p[:, 0])[:, None]
    y = sph_harm_y(ls[None, :], np.abs(ms)[None, :], colat, lam) * (-1.0) ** np.abs(ms)
    return np.where(ms > 0, np.sqrt(2) * y.real, np.where(ms < 0, np.sqrt(2) * y.imag, y.real))


def test_closed_forms_low_degree(points32) -> None:  # type: ignore[no-untyped-def]
    _, p = points32
    out = create_encoder("sh", max_degree=1)(torch.from_numpy(p)).numpy()
    lam, phi = np.radians(p[:, 0]), np.radians(p[:, 1])
    x, y, z = np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)
    c1 = np.sqrt(3 / (4 * np.pi))
    ref = np.column_stack((np.full_like(x, 0.5 / np.sqrt(np.pi)), c1 * y, c1 * z, c1 * x))
    np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("max_degree", [4, 30])
def test_against_scipy_float64(max_degree: int, points32) -> None:  # type: ignore[no-untyped-def]
    _, p = points32
    out = create_encoder("sh", max_degree=max_degree)(torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(out, ref_real_sh(p, max_degree), atol=1e-9, rtol=0)
    np.testing.assert_allclose(out, ref_real_sh_complex(p, max_degree), atol=1e-9, rtol=0)


def test_against_scipy_float32(points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    matches_reference(create_encoder("sh", max_degree=10)(x), ref_real_sh(p, 10), max_phase=10.0)


def quadrature(max_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre in cos θ × uniform in λ; exact for products of degree ≤ L harmonics."""
    nodes, weights = np.polynomial.legendre.leggauss(max_degree + 2)
    n_lam = 2 * max_degree + 2
    lam = np.arange(n_lam) * 360.0 / n_lam - 180.0
    lat = np.degrees(np.arcsin(nodes))  # cos θ = sin φ
    grid_lon, grid_lat = np.meshgrid(lam, lat)
    w = np.repeat(weights, n_lam) * (2 * np.pi / n_lam)
    return np.column_stack((grid_lon.ravel(), grid_lat.ravel())), w


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_orthonormal_by_quadrature(dtype: torch.dtype, tol: float) -> None:
    """Gram matrix ∫ Y_i Y_j dΩ = I for L = 10 (tolerance 1e-10 in float64, 1e-5 in float32)."""
    pts, w = quadrature(10)
    y = create_encoder("sh", max_degree=10)(torch.from_numpy(pts).to(dtype)).double().numpy()
    gram = y.T @ (y * w[:, None])
    np.testing.assert_allclose(gram, np.eye(121), atol=tol, rtol=0)


def test_float32_finite_and_accurate_at_degree_100() -> None:
    lat = np.concatenate(([90.0, -90.0, 89.999, -89.999, 0.0], np.linspace(-90, 90, 181)))
    lon = np.linspace(-180, 180, lat.size)
    pts = np.column_stack((lon, lat)).astype(np.float32)
    enc = create_encoder("sh", max_degree=100)
    y32 = enc(torch.from_numpy(pts))
    assert y32.shape == (pts.shape[0], 101**2) and y32.dtype == torch.float32
    assert torch.isfinite(y32).all()
    y64 = enc(torch.from_numpy(pts).double())
    # values reach √((2L+1)/4π) ≈ 4; float32 recurrence + argument rounding stays below 1e-3
    assert (y32.double() - y64).abs().max() < 1e-3
    idx = np.r_[0:5, 5 : pts.shape[0] : 8]  # both poles, near-poles, a spread; SciPy is slow
    ref = ref_real_sh_complex(pts[idx].astype(np.float64), 100)
    np.testing.assert_allclose(y64[idx].numpy(), ref, atol=1e-9)


def test_poles_only_zonal_terms() -> None:
    out = create_encoder("sh", max_degree=6)(torch.tensor([[37.0, 90.0], [-120.0, -90.0]]))
    idx = [l_ * l_ + l_ for l_ in range(7)]  # m = 0 columns
    mask = torch.ones(49, dtype=torch.bool)
    mask[idx] = False
    assert out[:, mask].abs().max() == 0
    expect = [math.sqrt((2 * l_ + 1) / (4 * math.pi)) for l_ in range(7)]
    np.testing.assert_allclose(out[0, idx].numpy(), expect, rtol=1e-6)
    np.testing.assert_allclose(
        out[1, idx].numpy(), [e * (-1) ** l_ for l_, e in enumerate(expect)], rtol=1e-6
    )
