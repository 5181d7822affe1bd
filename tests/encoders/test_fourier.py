"""nerf, rbf, rff and geoclip vs float64 NumPy references (csp.md §2, peers.md §1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.encoders import create_encoder
from geocsp.errors import ConfigError, CoordinateError


def ref_xyz(p: np.ndarray) -> np.ndarray:
    lam, phi = np.radians(p[:, 0]), np.radians(p[:, 1])
    return np.column_stack((np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)))


def ref_nerf(p: np.ndarray, s_count: int) -> np.ndarray:
    xyz = ref_xyz(p)
    cols = []
    for axis in range(3):
        for level in range(s_count):
            f = np.pi * 2.0**level
            cols += [np.sin(f * xyz[:, axis]), np.cos(f * xyz[:, axis])]
    return np.column_stack(cols)


@pytest.mark.parametrize("s_count", [16, 4])
def test_nerf(s_count, points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    out = create_encoder("nerf", num_scales=s_count)(x)
    matches_reference(out, ref_nerf(p, s_count), max_phase=np.pi * 2.0 ** (s_count - 1))


def test_rbf(points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    enc = create_encoder("rbf", num_anchors=50, sigma_deg=30.0)
    anchors = enc.anchors.double().numpy()
    d2 = ((p[:, None, :] - anchors[None, :, :]) ** 2).sum(-1)
    matches_reference(enc(x), np.exp(-d2 / (2 * 30.0**2)), max_phase=1.0)


def test_rbf_default_anchors_uniform_on_sphere() -> None:
    a = create_encoder("rbf", num_anchors=4000).anchors.double()
    assert a[:, 0].abs().max() <= 180 and a[:, 1].abs().max() <= 90
    # uniform on the sphere <=> sin(lat) uniform on [-1, 1]: mean 0, variance 1/3
    z = torch.sin(torch.deg2rad(a[:, 1]))
    assert abs(z.mean().item()) < 0.05 and abs(z.var().item() - 1 / 3) < 0.03
    assert abs(a[:, 0].mean().item()) < 8


def test_rbf_set_anchors(matches_reference) -> None:  # type: ignore[no-untyped-def]
    enc = create_encoder("rbf", num_anchors=2, sigma_deg=2.0)
    enc.set_anchors([[10.0, 20.0], [-30.0, 5.0]])
    out = enc(torch.tensor([[10.0, 20.0], [12.0, 20.0]]))
    d2 = np.array([[0.0, 40**2 + 15**2], [4.0, 42**2 + 15**2]])
    matches_reference(out, np.exp(-d2 / 8.0), max_phase=1.0)
    with pytest.raises(ConfigError, match="expected 2 rows"):
        enc.set_anchors(torch.zeros(3, 2))
    with pytest.raises(CoordinateError, match="latitude outside"):
        enc.set_anchors([[0.0, 95.0], [0.0, 0.0]])


def test_rff(points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    enc = create_encoder("rff", num_features=64, variance=4.0)
    w, b = enc.weight.double().numpy(), enc.bias.double().numpy()
    xn = np.column_stack((p[:, 0] / 180, p[:, 1] / 90))
    phase = xn @ w + b
    matches_reference(enc(x), np.sqrt(2 / 64) * np.cos(phase), max_phase=np.abs(phase).max())


def test_rff_random_parameters_have_spec_distribution() -> None:
    enc = create_encoder("rff", num_features=20000, variance=4.0)
    assert abs(enc.weight.double().var().item() - 4.0) < 0.15  # variance, not std
    assert enc.bias.min() >= 0 and enc.bias.max() < 2 * np.pi
    assert abs(enc.bias.double().mean().item() - np.pi) < 0.05


def ref_equal_earth(p: np.ndarray) -> np.ndarray:
    a1, a2, a3, a4 = 1.340264, -0.081106, 0.000893, 0.003796
    lam, phi = np.radians(p[:, 0]), np.radians(p[:, 1])
    th = np.arcsin(np.sqrt(3) / 2 * np.sin(phi))
    x = (
        2
        * np.sqrt(3)
        * lam
        * np.cos(th)
        / (3 * (9 * a4 * th**8 + 7 * a3 * th**6 + 3 * a2 * th**2 + a1))
    )
    y = a4 * th**9 + a3 * th**7 + a2 * th**3 + a1 * th
    return np.column_stack((x, y)) * 66.50336 / 180


def test_equal_earth_extent() -> None:
    from geocsp.encoders.fourier import equal_earth

    corners = torch.tensor(
        [[180.0, 0.0], [-180.0, 0.0], [0.0, 90.0], [0.0, 0.0]], dtype=torch.float64
    )
    np.testing.assert_allclose(
        equal_earth(corners).numpy(), ref_equal_earth(corners.numpy()), atol=1e-12
    )
    np.testing.assert_allclose(equal_earth(corners)[:, 0].numpy(), [1.0, -1.0, 0.0, 0.0], atol=1e-5)


def test_geoclip(points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    enc = create_encoder("geoclip", sigmas=[1.0, 16.0], num_features=32)
    proj = ref_equal_earth(p)
    cols, max_phase = [], 0.0
    for freqs in enc.freqs.double().numpy():  # (F, 2) per branch
        phase = 2 * np.pi * proj @ freqs.T
        cols += [np.cos(phase), np.sin(phase)]
        max_phase = max(max_phase, np.abs(phase).max())
    matches_reference(enc(x), np.column_stack(cols), max_phase=max_phase)
    assert enc.branches == 2 and enc.out_dim == 2 * 2 * 32


def test_geoclip_branch_scales() -> None:
    enc = create_encoder("geoclip", num_features=4096)
    assert enc.branches == 3 and enc.out_dim == 3 * 2 * 4096
    stds = enc.freqs.double().reshape(3, -1).std(dim=1)
    np.testing.assert_allclose(stds.numpy(), [1.0, 16.0, 256.0], rtol=0.05)
