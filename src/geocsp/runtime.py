"""The one source of device, rank, world size and autocast for a process.

Every layer that needs to know *where* it runs asks this module; nothing else reads
``RANK`` / ``WORLD_SIZE`` or picks a device. Two questions have two answers:

* :func:`rank_and_world` -- who this process is: the initialised process group's rank and
  size; before (or without) one, torchrun's ``RANK`` / ``WORLD_SIZE`` environment; ``(0, 1)``
  in a plain run. Rank 0 alone writes files (:func:`is_main_process`).
* :func:`distributed_active` -- whether collectives reach other processes (an initialised
  group of more than one rank): only then is work sharded and reduced.

:func:`resolve_device` turns a user's device string into a ``torch.device`` (binding
``cuda`` to ``cuda:LOCAL_RANK`` under torchrun); :func:`autocast` is the precision switch.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from geocsp.errors import ConfigError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""Environment variables torchrun sets and :func:`env_int` reads."""

PRECISIONS = ("fp32", "bf16")
"""Values of the ``precision`` config field."""


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
        """Whether more than one process takes part.

        Returns:
            True when ``world_size > 1``.
        """
        return self.world_size > 1


def env_int(name: str, default: int | None = None) -> int:
    """An integer environment variable set by torchrun.

    Args:
        name: the variable, e.g. ``RANK``.
        default: value when unset; None makes an unset variable an error.

    Returns:
        The integer value.

    Raises:
        ConfigError: when the variable is unset without a default, or not an integer.
    """
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


def distributed_active() -> bool:
    """Whether an initialised process group of more than one rank exists.

    Returns:
        True only inside a process group of world size > 1; collectives are no-ops otherwise.
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process.

    The initialised process group's values; without one, torchrun's ``RANK`` /
    ``WORLD_SIZE`` environment; ``(0, 1)`` in a plain run.

    Returns:
        ``(rank, world_size)``, with 0 <= rank < world_size.

    Raises:
        ConfigError: when ``RANK`` or ``WORLD_SIZE`` is set but not an integer.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return env_int("RANK", 0), env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    """True on rank 0 (and in a single-process run): the process that writes files.

    Returns:
        Whether :func:`rank_and_world` gives rank 0.
    """
    return rank_and_world()[0] == 0


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """A user's device string as a ``torch.device``.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``...
        local_rank: under torchrun, this process's rank on its node: a bare ``cuda`` (or
            ``auto`` on a GPU machine) becomes ``cuda:LOCAL_RANK`` and is made current.

    Returns:
        The device.

    Raises:
        ConfigError: for an unknown device string, CUDA requested without a GPU, or a
            local rank beyond the visible GPUs.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available; use --device cpu")
    if local_rank is None:
        return dev
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


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for ``precision == "bf16"`` (float32 master weights), else a no-op.

    Args:
        device: the device the computation runs on.
        precision: ``fp32`` or ``bf16``.

    Returns:
        A context manager.
    """
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
