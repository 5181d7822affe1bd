"""direct, wrap, wrap_ffn, xyz vs float64 NumPy references written from csp.md §2."""

from __future__ import annotations

import numpy as np
import pytest

from geocsp.encoders import create_encoder


def ref_direct(p: np.ndarray) -> np.ndarray:
    return np.column_stack((p[:, 0] / 180.0, p[:, 1] / 90.0))


def ref_wrap(p: np.ndarray) -> np.ndarray:
    lon, lat = p[:, 0], p[:, 1]
    return np.column_stack(
        (
            np.sin(np.pi * lon / 180),
            np.sin(np.pi * lat / 90),
            np.cos(np.pi * lon / 180),
            np.cos(np.pi * lat / 90),
        )
    )


def ref_xyz(p: np.ndarray) -> np.ndarray:
    lam, phi = np.radians(p[:, 0]), np.radians(p[:, 1])
    return np.column_stack((np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)))


@pytest.mark.parametrize(
    "name,ref",
    [("direct", ref_direct), ("wrap", ref_wrap), ("wrap_ffn", ref_wrap), ("xyz", ref_xyz)],
)
def test_against_reference(name, ref, points32, matches_reference) -> None:  # type: ignore[no-untyped-def]
    x, p = points32
    matches_reference(create_encoder(name)(x), ref(p), max_phase=2 * np.pi)


def test_wrap_known_values() -> None:
    import torch

    out = create_encoder("wrap")(torch.tensor([[90.0, 45.0]]))
    np.testing.assert_allclose(out.numpy(), [[1.0, 1.0, 0.0, 0.0]], atol=1e-7)
