"""Process groups under torchrun and the all-gather with gradient of the in-batch terms.

geocsp has **one distributed mode** (style §7.4): every rank computes its loss over its
local rows against the *globally gathered* columns, so N ranks x batch B see the same
negatives as one process with batch N*B.

Gradient semantics of :func:`all_gather_with_grad`. Rank r minimises L_r, the mean over
its B local rows; DistributedDataParallel then *averages* parameter gradients over the N
ranks, so the applied gradient is ``(1/N) sum_r dL_r/dθ``, which is the gradient of the
global-batch mean loss ``(1/N) sum_r L_r``. For that, the gradient reaching rank r's local
embeddings e_r must be ``sum_s dL_s/de_r`` (every rank's loss uses e_r as columns): the
backward of the gather therefore **sums** the incoming column gradients over ranks
(all-reduce SUM) and keeps this rank's slice. ``tests/distributed`` checks it against a
single process holding the global batch.

Outside torchrun (no process group, or world size 1) everything here is a no-op.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from geocsp.errors import ConfigError
from geocsp.objectives import LOCAL, DistContext
from geocsp.runtime import (
    DistInfo,
    distributed_active,
    env_int,
    is_main_process,
    resolve_device,
)

T = TypeVar("T")

def init_distributed(
    device: str = "auto", backend: str | None = None, timeout_s: float = 1800.0
) -> DistInfo:
    """Join the torchrun job described by the environment (idempotent).

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    Without ``WORLD_SIZE`` (a plain ``python`` run) or with ``WORLD_SIZE=1`` no process
    group is created and a single-process :class:`DistInfo` is returned. With CUDA the
    process binds to ``cuda:LOCAL_RANK`` and uses NCCL; on CPU it uses gloo.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` (-> ``cuda:LOCAL_RANK``) or ``cuda:N``.
        backend: force a backend (``gloo``/``nccl``); None picks by device.
        timeout_s: collective timeout in seconds.

    Returns:
        This process's :class:`DistInfo`.

    Raises:
        ConfigError: on missing/invalid environment variables or too few GPUs.
    """
    world = env_int("WORLD_SIZE", 1)
    rank = env_int("RANK", 0)
    local_rank = env_int("LOCAL_RANK", rank if world > 1 else 0)
    info = DistInfo(rank, world, local_rank, resolve_device(device, local_rank))
    if world > 1 and not dist.is_initialized():
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(key):
                raise ConfigError(
                    f"distributed: environment variable {key} is not set; launch with torchrun"
                )
        chosen = backend or ("nccl" if info.device.type == "cuda" else "gloo")
        dist.init_process_group(
            chosen, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s)
        )
    return info


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather forward; all-reduce SUM of the column gradients + own slice backward."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), t.shape[0]
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t)
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(t: Tensor) -> Tensor:
    """Concatenate every rank's ``t`` in rank order, with gradients flowing back to each rank.

    All ranks must call it with the same shape (the trainers drop incomplete batches).

    Args:
        t: (B, ...) this rank's tensor.

    Returns:
        (world_size * B, ...) the ranks' tensors concatenated; ``t`` itself when not
        distributed.
    """
    if not distributed_active():
        return t
    return _AllGatherWithGrad.apply(t.contiguous())


def make_dist_context(info: DistInfo) -> DistContext:
    """The objectives' :class:`~geocsp.objectives.DistContext` for this process.

    Args:
        info: this process's :class:`DistInfo`.

    Returns:
        ``LOCAL`` (no gathering) when not distributed, else a context whose ``gather`` is
        :func:`all_gather_with_grad`.
    """
    if not info.distributed:
        return LOCAL
    return DistContext(gather=all_gather_with_grad, rank=info.rank, world_size=info.world_size)


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over ranks in place and return it (unchanged when not distributed).

    Args:
        tensor: any tensor, the same shape and dtype on every rank (a CPU tensor is reduced
            through a GPU copy under NCCL).

    Returns:
        ``tensor`` itself, now holding the sum over ranks.
    """
    if not distributed_active():
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        # NCCL reduces GPU tensors only: reduce a GPU copy, write the result back
        tmp = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(tmp, op=dist.ReduceOp.SUM)
        return tensor.copy_(tmp)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_over_ranks(values: dict[str, Any]) -> dict[str, Any]:
    """Sum each scalar in ``values`` over ranks (float64); the dict itself when not distributed.

    Every rank must pass the same keys.

    Args:
        values: name -> scalar (float-convertible).

    Returns:
        name -> float sum over ranks (``values`` itself when not distributed).
    """
    if not distributed_active():
        return values
    keys = sorted(values)
    vec = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    all_reduce_sum(vec)
    return {k: float(v) for k, v in zip(keys, vec.tolist(), strict=True)}


def barrier() -> None:
    """Wait until every rank arrives (no-op when not distributed)."""
    if distributed_active():
        dist.barrier()


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then -- after a barrier -- on the other ranks.

    For steps that create files the other ranks then read (a run directory's config, a
    label subset): rank 0 writes, the others find the files complete.

    Args:
        fn: a callable without arguments, run once on every rank.

    Returns:
        This rank's result of ``fn``.
    """
    if is_main_process():
        out = fn()
        barrier()
        return out
    barrier()
    return fn()


def seed_for_rank(seed: int, rank: int) -> int:
    """A distinct, reproducible 63-bit seed for ``rank`` derived from ``seed``.

    Args:
        seed: the run's base seed, >= 0.
        rank: the process's global rank, >= 0.

    Returns:
        An integer in [0, 2**63).

    Raises:
        ConfigError: on a negative seed or rank.
    """
    if seed < 0 or rank < 0:
        raise ConfigError(
            f"seed_for_rank: seed and rank must be >= 0, got seed={seed}, rank={rank}"
        )
    state = np.random.SeedSequence([int(seed), int(rank)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous ``[start, stop)`` of ``n`` rows for ``rank`` (sizes differ by at most 1).

    Args:
        n: number of rows, >= 0.
        rank: this process's rank, in [0, world_size).
        world_size: number of processes, >= 1.

    Returns:
        ``(start, stop)``: the row slice of ``rank``; lower ranks get the extra rows.

    Raises:
        ConfigError: on n < 0 or an invalid rank / world size.
    """
    if n < 0 or world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(
            f"shard_range: need n >= 0 and 0 <= rank < world_size, got {n}, {rank}, {world_size}"
        )
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def cleanup(sync: bool = False) -> None:
    """Destroy the process group if this process created one.

    Args:
        sync: wait at a barrier first, so that no rank tears down its communicator while
            another still uses it (gloo aborts a process whose peer vanished mid-call).
            Use it on the normal exit path only: after an error a barrier could wait for a
            rank that is gone.
    """
    if dist.is_available() and dist.is_initialized():
        if sync and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
