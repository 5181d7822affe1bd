"""Multi-process training under torchrun: process groups, gathered columns, DDP steps.

See ``docs/distributed.md`` and :mod:`geocsp.distributed.context` for the gradient
semantics of the all-gather.
"""

from geocsp.distributed.context import (
    ENV_KEYS,
    DistInfo,
    all_gather_with_grad,
    all_reduce_sum,
    barrier,
    cleanup,
    init_distributed,
    is_main_process,
    make_dist_context,
    seed_for_rank,
    shard_range,
)
from geocsp.distributed.ddp import StepModule, ddp_step

__all__ = [
    "ENV_KEYS",
    "DistInfo",
    "StepModule",
    "all_gather_with_grad",
    "all_reduce_sum",
    "barrier",
    "cleanup",
    "ddp_step",
    "init_distributed",
    "is_main_process",
    "make_dist_context",
    "seed_for_rank",
    "shard_range",
]
