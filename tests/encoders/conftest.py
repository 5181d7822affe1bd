"""Fixtures shared by the encoder tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

EPS32 = float(np.finfo(np.float32).eps)


def edge_points() -> np.ndarray:
    """(9, 2) degrees: the corners ±180/±90, the poles and the origin."""
    return np.array(
        [
            [-180, -90],
            [-180, 90],
            [180, -90],
            [180, 90],
            [0, 90],
            [0, -90],
            [180, 0],
            [-180, 0],
            [0, 0],
        ],
        dtype=np.float64,
    )


@pytest.fixture
def points32() -> tuple[torch.Tensor, np.ndarray]:
    """Fresh random points plus the edge points: (float32 tensor, the same values in float64)."""
    rng = np.random.default_rng()
    rand = np.column_stack((rng.uniform(-180, 180, 64), rng.uniform(-90, 90, 64)))
    pts = np.concatenate((edge_points(), rand)).astype(np.float32)
    return torch.from_numpy(pts), pts.astype(np.float64)


def _assert_matches_reference(actual: torch.Tensor, expected: np.ndarray, max_phase: float) -> None:
    """float32 features vs a float64 reference.

    Tolerance: 1e-5 plus 4·eps32·max|phase|, the error of evaluating sin/cos of a float32
    argument of that size (grid at defaults: max phase 10 rad/° · 180° = 1800 -> ~9e-4).
    """
    assert actual.dtype == torch.float32
    assert actual.shape == expected.shape
    atol = 1e-5 + 4 * EPS32 * max_phase
    np.testing.assert_allclose(
        actual.detach().numpy().astype(np.float64), expected, atol=atol, rtol=0
    )


@pytest.fixture
def matches_reference():  # type: ignore[no-untyped-def]
    """The comparison helper (a fixture so test modules need not import conftest)."""
    return _assert_matches_reference


@pytest.fixture
def edges() -> np.ndarray:
    """The edge points of :func:`edge_points`."""
    return edge_points()
