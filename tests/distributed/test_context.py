"""Single-process behaviour of geocsp.distributed (no process group)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geocsp.distributed import (
    ENV_KEYS,
    DistInfo,
    all_gather_with_grad,
    all_reduce_sum,
    barrier,
    cleanup,
    ddp_step,
    init_distributed,
    is_main_process,
    make_dist_context,
    seed_for_rank,
    shard_range,
    sum_over_ranks,
)
from geocsp.errors import ConfigError
from geocsp.objectives import LossOutput
from geocsp.objectives.types import LOCAL


@pytest.fixture
def no_env(monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_plain_run_is_single_process(no_env):
    info = init_distributed("cpu")
    assert info == DistInfo(0, 1, 0, torch.device("cpu"))
    assert info.is_main and not info.distributed
    assert not torch.distributed.is_initialized()
    assert make_dist_context(info) is LOCAL
    assert is_main_process()


def test_world_size_one_under_torchrun_needs_no_group(no_env):
    no_env.setenv("WORLD_SIZE", "1")
    no_env.setenv("RANK", "0")
    info = init_distributed("auto")
    assert info.world_size == 1 and not torch.distributed.is_initialized()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR is not set"),
        ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}, "MASTER_PORT is not set"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer, got 'two'"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "need 0 <= rank < world_size"),
    ],
)
def test_bad_environment_raises(no_env, env, match):
    for key, value in env.items():
        no_env.setenv(key, value)
    with pytest.raises(ConfigError, match=match):
        init_distributed("cpu")
    assert not torch.distributed.is_initialized()


def test_bad_device_raises(no_env):
    with pytest.raises(ConfigError, match="unknown device 'tpu0'"):
        init_distributed("tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            init_distributed("cuda")


def test_collectives_are_no_ops_without_a_group():
    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x
    t = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    barrier()
    values = {"a": 1.0}
    assert sum_over_ranks(values) is values
    cleanup()  # nothing to destroy


def test_seed_for_rank_is_reproducible_and_distinct():
    seeds = [seed_for_rank(0, r) for r in range(64)] + [seed_for_rank(1, r) for r in range(64)]
    assert len(set(seeds)) == 128
    assert seed_for_rank(0, 3) == seed_for_rank(0, 3)
    assert all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ConfigError, match="must be >= 0"):
        seed_for_rank(-1, 0)


@pytest.mark.parametrize(("n", "world"), [(0, 2), (1, 3), (13, 2), (10, 4), (7, 7)])
def test_shard_range_partitions_in_order(n, world):
    bounds = [shard_range(n, r, world) for r in range(world)]
    covered = np.concatenate([np.arange(a, b) for a, b in bounds])
    np.testing.assert_array_equal(covered, np.arange(n))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_shard_range_rejects_bad_rank():
    with pytest.raises(ConfigError, match="0 <= rank < world_size"):
        shard_range(5, 2, 2)


def test_ddp_step_single_process_is_a_plain_call():
    model = nn.Linear(2, 1)

    def fn(m, x):
        y = m(x).sum()
        return LossOutput(y, {"y": y.detach()})

    step = ddp_step(model, fn, DistInfo())
    x = torch.ones(4, 2)
    out = step(x)
    assert isinstance(out, LossOutput) and set(out.terms) == {"y"}
    assert out.total.item() == pytest.approx(model(x).sum().item())
    out.total.backward()
    np.testing.assert_allclose(model.weight.grad.numpy(), [[4.0, 4.0]])


def test_reduced_protocol_without_group_is_evaluate_scores():
    from geocsp.distributed import evaluate_scores_reduced, rank_and_world, shard_rows
    from geocsp.evaluation import evaluate_scores

    rng = np.random.default_rng(0)
    img, loc = rng.dirichlet(np.ones(4), size=9), rng.uniform(size=(9, 4))
    labels, has = rng.integers(0, 4, size=9), rng.uniform(size=9) > 0.2
    assert rank_and_world() == (0, 1)
    np.testing.assert_array_equal(shard_rows(np.arange(9)), np.arange(9))
    assert evaluate_scores_reduced(img, loc, labels, has, beta=2.0) == evaluate_scores(
        img, loc, labels, has, beta=2.0
    )
