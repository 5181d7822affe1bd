"""Plain types of ``objectives/types.py``: batches, outputs, the distributed context."""

from __future__ import annotations

import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.objectives import DistContext, LossOutput, PretrainBatch
from geocsp.objectives.types import LOCAL, FinetuneLoss, PretrainObjective


def test_dist_context_validation():
    with pytest.raises(ConfigError, match="need 0 <= rank < world_size"):
        DistContext(rank=2, world_size=2)


def test_local_context_is_one_rank_with_identity_gather():
    x = torch.randn(3, 2)
    assert LOCAL.rank == 0 and LOCAL.world_size == 1
    assert LOCAL.gather(x) is x


def test_defaults_of_outputs_batches_and_bases():
    t = torch.tensor(1.0)
    assert LossOutput(t).terms == {}
    assert PretrainBatch(torch.zeros(2, 2), torch.zeros(2, 3)).neg_lonlat is None
    assert PretrainObjective.num_negatives == 0 and PretrainObjective.uses_image_projection
    assert FinetuneLoss.needs_background is False
