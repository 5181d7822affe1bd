"""grid, grid_rad, theory, theory_rad vs float64 NumPy references written from csp.md §2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.encoders import create_encoder


def ref_freqs(s_count: int = 32, r_min: float = 0.1, r_max: float = 360.0) -> np.ndarray:
    return np.array(
        [1.0 / (r_min * (r_max / r_min) ** (s / (s_count - 1))) for s in range(s_count)]
    )


def ref_grid(coords: np.ndarray, w: np.ndarray) -> np.ndarray:
    cols = []
    for c in range(2):  # coordinate-major
        for s in range(len(w)):  # then frequency
            cols += [np.sin(w[s] * coords[:, c]), np.cos(w[s] * coords[:, c])]  # then (sin, cos)
    return np.column_stack(cols)


def ref_theory(coords: np.ndarray, w: np.ndarray) -> np.ndarray:
    u = [(1.0, 0.0), (-0.5, np.sqrt(3) / 2), (-0.5, -np.sqrt(3) / 2)]
    cols = []
    for s in range(len(w)):  # frequency-major
        for ux, uy in u:
            a = coords[:, 0] * ux + coords[:, 1] * uy
            cols += [np.sin(w[s] * a), np.cos(w[s] * a)]
    return np.column_stack(cols)


CASES = [
    ("grid", ref_grid, False),
    ("grid_rad", ref_grid, True),
    ("theory", ref_theory, False),
    ("theory_rad", ref_theory, True),
]


@pytest.mark.parametrize("name,ref,radians", CASES)
def test_against_reference(name, ref, radians, points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    coords = np.radians(p) if radians else p
    w = ref_freqs()
    max_phase = w.max() * np.abs(coords).max() * 1.2
    matches_reference(create_encoder(name)(x), ref(coords, w), max_phase)


@pytest.mark.parametrize("name,ref,radians", CASES)
def test_other_scales_and_schedule(name, ref, radians, points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    coords = np.radians(p) if radians else p
    w = ref_freqs(5, 1.0, 50.0)
    out = create_encoder(name, num_scales=5, r_min_deg=1.0, r_max_deg=50.0)(x)
    matches_reference(out, ref(coords, w), w.max() * np.abs(coords).max() * 1.2)
    w = np.pi * 2.0 ** np.arange(3)
    out = create_encoder(name, num_scales=3, freq_schedule="nerf")(x)
    matches_reference(out, ref(coords, w), w.max() * np.abs(coords).max() * 1.2)


def test_grid_rad_differs_from_grid() -> None:
    """The reference gridcellnorm bug made it equal to grid; geocsp's grid_rad is not."""
    x = torch.tensor([[12.0, 34.0]])
    assert not torch.allclose(create_encoder("gridcellnorm")(x), create_encoder("grid")(x))
    torch.testing.assert_close(
        create_encoder("grid_rad")(x.double()),
        create_encoder("grid")(torch.deg2rad(x.double())),
        atol=1e-12,
        rtol=0,
    )
