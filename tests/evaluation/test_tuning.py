"""tune_beta and grid_states: the one-pass grid search over fusion parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.metrics import MetricAccumulator
from geocsp.evaluation.tuning import grid_states, tune_beta
from geocsp.prior.fusion import calibrated_log_scores


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


# --- grid_states: the one pass shared by tune_beta, fit_fusion and crossfit_fusion ------------


POINTS = [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (0.3, 0.01), (2.0, 0.2)]


def test_grid_states_match_direct_accumulation() -> None:
    img, loc, has = case(1, n=90)
    labels = torch.randint(0, 9, (90,), generator=torch.Generator().manual_seed(1))
    loc[~has] = float("nan")
    states = grid_states(img, loc, labels, has, POINTS, ks=(1, 3), n_bins=4, batch_size=16)
    assert states.shape == (1, len(POINTS), 3 + 2 + 3 * 4) and states.dtype == torch.float64
    for p, (beta, eps) in enumerate(POINTS):
        acc = MetricAccumulator((1, 3), 4)
        acc.update(calibrated_log_scores(img, loc, has, beta, eps), labels, log_space=True)
        torch.testing.assert_close(states[0, p], acc.state(), rtol=1e-12, atol=1e-12)


def test_grid_states_groups_partition_the_rows() -> None:
    img, loc, has = case(2, n=77)
    labels = torch.randint(0, 9, (77,), generator=torch.Generator().manual_seed(2))
    groups = np.random.default_rng(2).integers(0, 3, 77)
    whole = grid_states(img, loc, labels, has, POINTS, batch_size=10)
    split = grid_states(img, loc, labels, has, POINTS, groups=groups, n_groups=3, batch_size=10)
    assert split.shape[:2] == (3, len(POINTS))
    torch.testing.assert_close(split.sum(dim=0), whole[0], rtol=1e-12, atol=1e-12)
    for g in range(3):  # each group's state is that of its rows alone
        m = groups == g
        alone = grid_states(img[m], loc[m], labels[m], has[m], POINTS, batch_size=10)
        torch.testing.assert_close(split[g], alone[0], rtol=1e-12, atol=1e-12)
    with pytest.raises(DatasetError, match=r"groups: expected 77 values in \[0, 2\)"):
        grid_states(img, loc, labels, has, POINTS, groups=groups, n_groups=2)
    with pytest.raises(ConfigError, match="eps: expected a value in"):
        grid_states(img, loc, labels, has, [(1.0, -0.1)])
    with pytest.raises(ConfigError, match=r"grid: expected at least one \(beta, eps\)"):
        grid_states(img, loc, labels, has, [])
