"""Pre-training objectives (``OBJECTIVES``) and fine-tuning losses (``FINETUNE_LOSSES``).

Layout: ``types`` (batches, outputs, the distributed context, module bases),
``functional`` (pure checks and loss math), ``aux_terms`` (the shared B/L/D machinery),
``api`` (registries and factories), and one module per family: ``contrastive``,
``nce``, ``regression``, ``presence``, ``distill`` (plus ``queue``, used by ``clip``). Importing the
package registers every family. See docs/objectives.md for the table of names, formulas
and defaults.
"""

from geocsp.objectives import contrastive, distill, nce, presence, regression
from geocsp.objectives.api import (
    FINETUNE_LOSSES,
    OBJECTIVES,
    create_finetune_loss,
    create_objective,
    get_objective_config,
    list_finetune_losses,
    list_objectives,
)
from geocsp.objectives.queue import LocationQueue
from geocsp.objectives.types import LOCAL, DistContext, LossOutput, PretrainBatch

__all__ = [
    "FINETUNE_LOSSES",
    "LOCAL",
    "OBJECTIVES",
    "DistContext",
    "LocationQueue",
    "LossOutput",
    "PretrainBatch",
    "contrastive",
    "create_finetune_loss",
    "create_objective",
    "distill",
    "get_objective_config",
    "list_finetune_losses",
    "list_objectives",
    "nce",
    "presence",
    "regression",
]
