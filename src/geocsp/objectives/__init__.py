"""Pre-training objectives (``OBJECTIVES``) and fine-tuning losses (``FINETUNE_LOSSES``).

See docs/objectives.md for the table of names, formulas and defaults.
"""

from geocsp.objectives import contrastive, nce, presence, regression
from geocsp.objectives.base import (
    FINETUNE_LOSSES,
    OBJECTIVES,
    DistContext,
    LossOutput,
    PretrainBatch,
    create_finetune_loss,
    create_objective,
    get_objective_config,
    list_finetune_losses,
    list_objectives,
)
from geocsp.objectives.queue import LocationQueue

__all__ = [
    "FINETUNE_LOSSES",
    "OBJECTIVES",
    "DistContext",
    "LocationQueue",
    "LossOutput",
    "PretrainBatch",
    "contrastive",
    "create_finetune_loss",
    "create_objective",
    "get_objective_config",
    "list_finetune_losses",
    "list_objectives",
    "nce",
    "presence",
    "regression",
]
