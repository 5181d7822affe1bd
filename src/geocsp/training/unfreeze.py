"""How much of a pre-trained encoder fine-tuning moves: frozen, partial or full (issue 16).

* frozen (``freeze_encoder`` or ``encoder_lr_scale = 0``): T only, the encoder in eval mode;
* partial: the encoder trains at ``lr * encoder_lr_scale`` (a discriminative learning rate,
  its own Adam parameter group with ``lr_scale``, saved with the optimizer state) and/or
  only after ``unfreeze_after`` epochs of T alone (gradual unfreezing: meanwhile the encoder
  gets no gradient, so Adam keeps no state for it and does not move it);
* full (default): one parameter group, exactly the paper's fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from geocsp.training.config import FinetuneConfig


def encoder_trains(cfg: FinetuneConfig, epoch: int) -> bool:
    """Whether the encoder trains in 0-based ``epoch``."""
    return not cfg.encoder_frozen and epoch >= cfg.unfreeze_after


def optimizer_params(model: nn.ModuleDict, cfg: FinetuneConfig) -> list[nn.Parameter] | list[dict[str, Any]]:
    """The fine-tuning optimizer's parameters: the encoder's (unless frozen), then T's.

    Returns:
        A plain parameter list (one group, lr scale 1) unless ``encoder_lr_scale`` is neither
        0 nor 1; then two groups, ``{"params": encoder, "lr_scale": s}`` and ``{"params": T,
        "lr_scale": 1.0}`` (same order, so Adam state ids are those of the one-group case).
    """
    encoder = [] if cfg.encoder_frozen else list(model["encoder"].parameters())
    head = list(model["head"].parameters())
    if cfg.encoder_frozen or cfg.encoder_lr_scale == 1:
        return [*encoder, *head]
    return [{"params": encoder, "lr_scale": float(cfg.encoder_lr_scale)}, {"params": head, "lr_scale": 1.0}]


def mode_setter(model: nn.ModuleDict, cfg: FinetuneConfig) -> Callable[[int], None]:
    """``set_mode(epoch)`` of the fine-tuning loop: train mode, the encoder frozen while it does not train.

    A frozen encoder runs in eval mode (a probe on fixed, dropout-free embeddings) and its
    parameters get no gradient.
    """

    def set_mode(epoch: int) -> None:
        model.train()
        trains = encoder_trains(cfg, epoch)
        model["encoder"].requires_grad_(trains)
        if not trains:
            model["encoder"].eval()

    return set_mode
