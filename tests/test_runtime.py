"""geocsp.runtime: device resolution, rank / world size, autocast, DistInfo."""

from __future__ import annotations

import contextlib

import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.runtime import (
    ENV_KEYS,
    DistInfo,
    autocast,
    distributed_active,
    env_int,
    is_main_process,
    rank_and_world,
    resolve_device,
)
from geocsp.training.rundir import RunDir


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_resolve_device_auto_and_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device() == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")


def test_resolve_device_unknown_raises() -> None:
    with pytest.raises(ConfigError, match="unknown device 'tpu0'; use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device_cuda_without_gpu_raises(name: str) -> None:
    with pytest.raises(ConfigError, match=f"'{name}' requested but CUDA is not available"):
        resolve_device(name)


def test_rank_and_world_default_is_single_process(no_env: pytest.MonkeyPatch) -> None:
    assert not torch.distributed.is_initialized()
    assert rank_and_world() == (0, 1)
    assert is_main_process()
    assert not distributed_active()


def test_rank_and_world_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # moved from tests/training/test_rundir.py::test_dist_env (rundir asks runtime now)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert rank_and_world() == (3, 4)
    assert RunDir("x").writer is False
    assert not is_main_process()
    assert not distributed_active()  # the environment alone creates no process group


def test_rank_and_world_rejects_non_integer_env(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("RANK", "zero")
    with pytest.raises(ConfigError, match="RANK must be an integer, got 'zero'"):
        rank_and_world()


def test_env_int(no_env: pytest.MonkeyPatch) -> None:
    assert env_int("LOCAL_RANK", 5) == 5
    with pytest.raises(ConfigError, match="LOCAL_RANK is not set; launch with torchrun"):
        env_int("LOCAL_RANK")
    no_env.setenv("LOCAL_RANK", "2")
    assert env_int("LOCAL_RANK") == 2


def test_autocast_fp32_is_a_no_op() -> None:
    ctx = autocast(torch.device("cpu"), "fp32")
    assert isinstance(ctx, contextlib.nullcontext)
    a = torch.ones(2, 3)
    with ctx:
        assert (a @ a.T).dtype == torch.float32


def test_autocast_bf16_runs_matmul_in_bf16() -> None:
    ctx = autocast(torch.device("cpu"), "bf16")
    assert isinstance(ctx, torch.autocast)
    a = torch.ones(2, 3)
    with ctx:
        assert (a @ a.T).dtype == torch.bfloat16
    assert (a @ a.T).dtype == torch.float32


def test_distinfo_defaults() -> None:
    info = DistInfo()
    assert info == DistInfo(0, 1, 0, torch.device("cpu"))
    assert info.is_main and not info.distributed
    assert DistInfo(2, 4, 0).distributed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 2, "world_size": 2}, "need 0 <= rank < world_size"),
        ({"rank": 0, "world_size": 0}, "need 0 <= rank < world_size"),
        ({"rank": 1, "world_size": 2, "local_rank": 2}, "local_rank"),
    ],
)
def test_distinfo_validates(kwargs: dict[str, int], match: str) -> None:
    # moved from tests/distributed/test_context.py (DistInfo lives in geocsp.runtime)
    with pytest.raises(ConfigError, match=match):
        DistInfo(**kwargs)
    assert not DistInfo(1, 4, 1).is_main
