"""MetricAccumulator: additive state, merging, validation."""

from __future__ import annotations

import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.evaluation.metrics import MetricAccumulator

from ._cases import make_case


def test_accumulator_state_sums_like_all_reduce() -> None:
    img, _, labels, _ = make_case(4)
    whole, a, b = MetricAccumulator(), MetricAccumulator(), MetricAccumulator()
    whole.update(torch.tensor(img), torch.tensor(labels))
    a.update(torch.tensor(img[:100]), torch.tensor(labels[:100]))
    b.update(torch.tensor(img[100:]), torch.tensor(labels[100:]))
    summed = MetricAccumulator.from_state(a.state() + b.state())  # what all_reduce(SUM) gives
    assert summed.compute() == pytest.approx(whole.compute())
    assert a.merge(b).compute() == pytest.approx(whole.compute())
    assert whole.state().dtype == torch.float64 and whole.state().shape == (1 + 4 + 2 + 45,)


def test_accumulator_errors() -> None:
    # moved from test_protocol.py::test_errors
    with pytest.raises(ConfigError, match="state: expected length 52"):
        MetricAccumulator.from_state(torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="n_bins: expected >= 1"):
        MetricAccumulator(n_bins=0)
