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
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from geocsp.errors import ConfigError
from geocsp.objectives.base import LOCAL, DistContext

T = TypeVar("T")

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""Environment variables torchrun sets and :func:`init_distributed` reads."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Args:
        rank: global rank in [0, world_size).
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        device: the device this process computes on.

    Raises:
        ConfigError: on world_size < 1 or a rank / local rank out of range.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    is_main: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"distributed: need 0 <= rank < world_size, got rank={self.rank}, "
                f"world_size={self.world_size}"
            )
        if not 0 <= self.local_rank <= self.rank:
            raise ConfigError(f"distributed: need 0 <= local_rank <= rank, got {self.local_rank}")
        object.__setattr__(self, "is_main", self.rank == 0)

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(
                f"distributed: environment variable {name} is not set; launch with torchrun"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"distributed: environment variable {name} must be an integer, got {raw!r}"
        ) from None


def _pick_device(device: str, local_rank: int) -> torch.device:
    """``auto``/``cuda`` -> ``cuda:LOCAL_RANK`` (when CUDA exists for auto), else the name."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"device: unknown device {device!r}; use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device: {device!r} requested but CUDA is not available; use --device cpu"
        )
    count = torch.cuda.device_count()
    if dev.index is None:
        if local_rank >= count:
            raise ConfigError(
                f"distributed: LOCAL_RANK={local_rank} but only {count} CUDA device(s) are visible; "
                "lower --nproc-per-node"
            )
        dev = torch.device("cuda", local_rank)
    torch.cuda.set_device(dev)
    return dev


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
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank if world > 1 else 0)
    info = DistInfo(rank, world, local_rank, _pick_device(device, local_rank))
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


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


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
    if not _active():
        return t
    return _AllGatherWithGrad.apply(t.contiguous())


def make_dist_context(info: DistInfo) -> DistContext:
    """The objectives' :class:`~geocsp.objectives.DistContext` for this process."""
    if not info.distributed:
        return LOCAL
    return DistContext(gather=all_gather_with_grad, rank=info.rank, world_size=info.world_size)


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over ranks in place and return it (unchanged when not distributed)."""
    if not _active():
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
    """
    if not _active():
        return values
    keys = sorted(values)
    vec = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    all_reduce_sum(vec)
    return {k: float(v) for k, v in zip(keys, vec.tolist(), strict=True)}


def barrier() -> None:
    """Wait until every rank arrives (no-op when not distributed)."""
    if _active():
        dist.barrier()


def main_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then -- after a barrier -- on the other ranks.

    For steps that create files the other ranks then read (a run directory's config, a
    label subset): rank 0 writes, the others find the files complete.
    """
    if is_main_process():
        out = fn()
        barrier()
        return out
    barrier()
    return fn()


def seed_for_rank(seed: int, rank: int) -> int:
    """A distinct, reproducible 63-bit seed for ``rank`` derived from ``seed``.

    Raises:
        ConfigError: on a negative seed or rank.
    """
    if seed < 0 or rank < 0:
        raise ConfigError(
            f"seed_for_rank: seed and rank must be >= 0, got seed={seed}, rank={rank}"
        )
    state = np.random.SeedSequence([int(seed), int(rank)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def is_main_process() -> bool:
    """True on rank 0 (and in a single-process run)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous ``[start, stop)`` of ``n`` rows for ``rank`` (sizes differ by at most 1).

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


def cleanup() -> None:
    """Destroy the process group if this process created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
