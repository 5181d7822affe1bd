"""Multi-process training under torchrun: process groups, gathered columns, DDP steps.

See ``docs/distributed.md`` and :mod:`geocsp.distributed.context` for the gradient
semantics of the all-gather.
"""

from geocsp.distributed.context import (
    all_gather_with_grad,
    all_reduce_sum,
    barrier,
    cleanup,
    init_distributed,
    main_first,
    make_dist_context,
    seed_for_rank,
    shard_range,
    sum_over_ranks,
)
from geocsp.distributed.ddp import StepModule, ddp_step
from geocsp.distributed.evaluation import evaluate_scores_reduced, shard_rows
from geocsp.runtime import ENV_KEYS, DistInfo, is_main_process, rank_and_world

__all__ = [
    "ENV_KEYS",
    "DistInfo",
    "StepModule",
    "all_gather_with_grad",
    "all_reduce_sum",
    "barrier",
    "cleanup",
    "ddp_step",
    "evaluate_scores_reduced",
    "init_distributed",
    "is_main_process",
    "main_first",
    "make_dist_context",
    "rank_and_world",
    "seed_for_rank",
    "shard_range",
    "shard_rows",
    "sum_over_ranks",
]
