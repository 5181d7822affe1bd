"""Frequency schedules vs the spec formulas (csp.md §2 "Frequency list")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geocsp.encoders.frequencies import (
    FrequencyConfig,
    geometric_frequencies,
    nerf_frequencies,
    random_frequencies,
)


def test_geometric_matches_formula_and_script_values() -> None:
    s = np.arange(32)
    timescale = 0.1 * (360.0 / 0.1) ** (s / 31)
    np.testing.assert_allclose(
        geometric_frequencies(32, 0.1, 360.0).numpy(), 1 / timescale, rtol=1e-14
    )
    w = FrequencyConfig().frequencies().numpy()
    # spec: ω runs from 10 to 1/360 rad per degree; wavelengths ≈ 0.63° to ≈ 2262°
    assert w[0] == pytest.approx(10.0) and w[-1] == pytest.approx(1 / 360)
    assert 2 * math.pi / w[0] == pytest.approx(0.628, abs=1e-3)
    assert 2 * math.pi / w[-1] == pytest.approx(2262, abs=1)


def test_single_scale_uses_r_min() -> None:
    assert geometric_frequencies(1, 2.0, 360.0).tolist() == [0.5]


def test_nerf_schedule() -> None:
    assert nerf_frequencies(4).tolist() == [math.pi, 2 * math.pi, 4 * math.pi, 8 * math.pi]


def test_random_schedule_seeded_and_bounded() -> None:
    a = random_frequencies(1000, 5.0, seed=3)
    assert torch.equal(a, random_frequencies(1000, 5.0, seed=3))
    assert not torch.equal(a, random_frequencies(1000, 5.0, seed=4))
    assert a.min() >= 0 and a.max() < 5.0 and abs(a.mean().item() - 2.5) < 0.2


def test_config_dispatch() -> None:
    cfg = FrequencyConfig(num_scales=5, freq_schedule="nerf")
    assert torch.equal(cfg.frequencies(), nerf_frequencies(5))
    cfg = FrequencyConfig(num_scales=5, freq_schedule="random", r_max_deg=2.0, seed=9)
    assert torch.equal(cfg.frequencies(), random_frequencies(5, 2.0, 9))
