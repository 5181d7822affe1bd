"""sphereC/C+/M/M+ and dfs vs float64 NumPy references written from csp.md §2 (sphere2vec table)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.encoders import create_encoder


def ref_freqs(s_count: int = 32, r_min: float = 0.1, r_max: float = 360.0) -> np.ndarray:
    return np.array(
        [1.0 / (r_min * (r_max / r_min) ** (s / (s_count - 1))) for s in range(s_count)]
    )


def per_scale(p: np.ndarray, w: np.ndarray, feats) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Scale-major layout: for each s, the per-scale features in table order."""
    lam1, phi1 = p[:, 0] * np.pi / 180, p[:, 1] * np.pi / 180
    cols = []
    for ws in w:
        lam_s, phi_s = ws * p[:, 0] * np.pi / 180, ws * p[:, 1] * np.pi / 180
        cols += feats(lam_s, phi_s, lam1, phi1)
    return np.column_stack(cols)


def f_sphere_c(ls, ps, l1, p1):  # type: ignore[no-untyped-def]
    return [np.sin(ps), np.cos(ps) * np.cos(ls), np.cos(ps) * np.sin(ls)]


def f_sphere_cplus(ls, ps, l1, p1):  # type: ignore[no-untyped-def]
    return [
        np.sin(ps),
        np.cos(ps),
        np.sin(ls),
        np.cos(ls),
        np.cos(ps) * np.cos(ls),
        np.cos(ps) * np.sin(ls),
    ]


def f_sphere_m(ls, ps, l1, p1):  # type: ignore[no-untyped-def]
    return [
        np.sin(ps),
        np.cos(ps) * np.cos(l1),
        np.cos(p1) * np.cos(ls),
        np.cos(ps) * np.sin(l1),
        np.cos(p1) * np.sin(ls),
    ]


def f_sphere_mplus(ls, ps, l1, p1):  # type: ignore[no-untyped-def]
    return [
        np.sin(ps), np.cos(ps), np.sin(ls), np.cos(ls),
        np.cos(ps) * np.cos(l1), np.cos(p1) * np.cos(ls), np.cos(ps) * np.sin(l1), np.cos(p1) * np.sin(ls),
    ]  # fmt: skip


def ref_dfs(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    singles = per_scale(
        p, w, lambda ls, ps, l1, p1: [np.sin(ps), np.cos(ps), np.sin(ls), np.cos(ls)]
    )
    lam = [w_ * p[:, 0] * np.pi / 180 for w_ in w]
    phi = [w_ * p[:, 1] * np.pi / 180 for w_ in w]
    prods = []
    for i in range(len(w)):
        for fa in (np.sin, np.cos):
            for j in range(len(w)):
                for fc in (np.sin, np.cos):
                    prods.append(fa(lam[i]) * fc(phi[j]))
    return np.column_stack([singles, *prods])


@pytest.mark.parametrize(
    "name,feats",
    [
        ("sphereC", f_sphere_c),
        ("sphereC+", f_sphere_cplus),
        ("sphereM", f_sphere_m),
        ("sphereM+", f_sphere_mplus),
    ],
)
@pytest.mark.parametrize("scales", [(32, 0.1, 360.0), (4, 2.0, 90.0)])
def test_against_reference(name, feats, scales, points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    s_count, r_min, r_max = scales
    w = ref_freqs(*scales)
    out = create_encoder(name, num_scales=s_count, r_min_deg=r_min, r_max_deg=r_max)(x)
    matches_reference(out, per_scale(p, w, feats), max_phase=w.max() * np.pi * 1.2)


@pytest.mark.parametrize("s_count", [32, 3])
def test_dfs_against_reference(s_count, points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    w = ref_freqs(s_count)
    out = create_encoder("dfs", num_scales=s_count)(x)
    assert out.shape[1] == 4 * s_count**2 + 4 * s_count
    matches_reference(out, ref_dfs(p, w), max_phase=w.max() * np.pi * 1.2)


def test_single_unit_scale_sphere_c_is_xyz() -> None:
    """With one scale of ω = 1 sphereC is [z, x, y] of the unit vector."""
    x = torch.tensor([[10.0, 20.0], [-170.0, -80.0], [180.0, 90.0]], dtype=torch.float64)
    out = create_encoder("sphereC", num_scales=1, r_min_deg=1.0)(x)
    xyz = create_encoder("xyz")(x)
    torch.testing.assert_close(out, xyz[:, [2, 0, 1]], atol=1e-7, rtol=0)
