"""Pure pieces of ``objectives/functional.py``: checks, the location pass, loss math."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geocsp.errors import ConfigError
from geocsp.objectives import DistContext
from geocsp.objectives.functional import (
    EPS,
    check_negatives,
    check_nonnegative,
    check_positive,
    encode_locations,
    inbatch_ce,
    inbatch_targets,
    neg_log,
    weighted_total,
)

from ._helpers import make_batch


def test_encode_locations_layout():
    seen = []

    def enc(x):
        seen.append(x.shape[0])
        return torch.cat([x, x.sum(1, keepdim=True)], 1)

    b = make_batch(3, 2, 2, seed=0)
    e, e2, n = encode_locations(b, enc, second_pass=True, negatives=True)
    assert seen == [3 + 3 + 6]
    torch.testing.assert_close(e[:, :2], b.lonlat)
    torch.testing.assert_close(e2[:, :2], b.lonlat)
    torch.testing.assert_close(n[:, :, :2], b.neg_lonlat)
    e, e2, n = encode_locations(b, enc, second_pass=False, negatives=False)
    assert seen[-1] == 3 and e2 is None and n is None


def test_encode_locations_rejects_misshaped_negatives():
    b = make_batch(3, 2, 2, seed=0)
    b.neg_lonlat = torch.zeros(3, 2, 3)
    with pytest.raises(ConfigError, match=r"\(B=3, C, 2\), got \(3, 2, 3\)"):
        encode_locations(b, lambda x: x, second_pass=False, negatives=True)


def test_checks_name_the_owner_and_field():
    check_positive("Cfg", a=1e-9, b=3.0)
    check_nonnegative("Cfg", a=0.0)
    check_negatives("Cfg", 0.0, 0)
    check_negatives("Cfg", 1.0, 2)
    with pytest.raises(ConfigError, match=r"Cfg\.b must be a finite number > 0, got 0\.0"):
        check_positive("Cfg", a=1.0, b=0.0)
    with pytest.raises(ConfigError, match=r"Cfg\.a must be a finite number >= 0, got inf"):
        check_nonnegative("Cfg", a=math.inf)
    with pytest.raises(ConfigError, match=r"Cfg\.num_negatives must be >= 1"):
        check_negatives("Cfg", 0.5, 0)
    with pytest.raises(ConfigError, match=r"got -1"):
        check_negatives("Cfg", 0.0, -1)


def test_neg_log_and_weighted_total():
    p = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(neg_log(p), -torch.log(p + EPS))
    assert EPS == 1e-5
    terms = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    assert weighted_total(terms, {"b": 0.5}).item() == 3.5


def test_inbatch_ce_targets_follow_the_rank():
    g = torch.Generator().manual_seed(0)
    rows, cols = torch.randn(3, 4, generator=g), torch.randn(6, 4, generator=g)
    dist = DistContext(rank=1, world_size=2)
    assert inbatch_targets(rows, dist).tolist() == [3, 4, 5]
    expected = F.cross_entropy(2.0 * rows @ cols.T, torch.tensor([3, 4, 5]))
    torch.testing.assert_close(inbatch_ce(rows, cols, 2.0, dist), expected)
