"""Paired differences over seeds: the Student-t interval against a hand computation."""

from __future__ import annotations

import math

import pytest

from geocsp.errors import ConfigError
from geocsp.experiments.stats import paired_ci


def test_hand_example() -> None:
    # diffs 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.303, half-width 4.303 / sqrt(3) = 2.484
    r = paired_ci([1.0, 2.0, 3.0])
    assert r["n"] == 3 and r["mean"] == 2.0 and r["sd"] == pytest.approx(1.0)
    assert r["half_width"] == pytest.approx(4.302653 / math.sqrt(3), abs=1e-6)
    assert round(r["half_width"], 3) == 2.484
    assert (r["low"], r["high"]) == pytest.approx((2.0 - 2.484, 2.0 + 2.484), abs=1e-3)


def test_five_seeds_and_level() -> None:
    r = paired_ci([0.01, 0.02, 0.03, 0.02, 0.02])  # sd = sqrt(0.0002 / 4)
    assert r["half_width"] == pytest.approx(2.776445 * math.sqrt(0.0002 / 4) / math.sqrt(5), rel=1e-6)
    assert paired_ci([1.0, 2.0, 3.0], level=0.9)["half_width"] == pytest.approx(2.919986 / math.sqrt(3), rel=1e-6)


def test_one_seed_has_no_interval() -> None:
    assert paired_ci([0.5]) == {"n": 1, "mean": 0.5, "sd": None, "half_width": None, "low": None, "high": None}


def test_errors() -> None:
    with pytest.raises(ConfigError, match="at least one paired difference"):
        paired_ci([])
    with pytest.raises(ConfigError, match=r"level: expected a confidence level in \(0, 1\)"):
        paired_ci([1.0, 2.0], level=1.0)
