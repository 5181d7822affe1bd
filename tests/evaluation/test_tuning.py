"""tune_beta: the grid search over the fusion exponent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.evaluation.tuning import tune_beta


def case(seed: int = 0, n: int = 64, q: int = 9):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, q, generator=g, dtype=torch.float64)
    loc = torch.rand(n, q, generator=g, dtype=torch.float64)
    has = torch.rand(n, generator=g) < 0.7
    return img, loc, has


def test_tune_beta_picks_informative_prior() -> None:
    rng = np.random.default_rng(0)
    n, q = 400, 10
    labels = rng.integers(0, q, n)
    img = rng.dirichlet(np.ones(q), n)
    loc = np.full((n, q), 0.3)
    loc[np.arange(n), labels] = 0.6  # a weak, always-right prior: more beta is better
    has = np.ones(n, bool)
    assert tune_beta(img, loc, labels, has) == 2.0
    flat = np.full((n, q), 0.5)  # uninformative prior: every beta ties, the first wins
    assert tune_beta(img, flat, labels, has, grid=(0.5, 0.0, 1.0)) == 0.5
    assert tune_beta(img, loc, labels, np.zeros(n, bool), grid=(1.0, 0.0)) == 1.0


def test_tune_beta_errors() -> None:
    # moved from tests/prior/test_fusion.py::test_errors
    img, loc, has = case()
    with pytest.raises(ConfigError, match="grid: expected at least one beta"):
        tune_beta(img, loc, torch.zeros(64, dtype=torch.long), has, grid=())
