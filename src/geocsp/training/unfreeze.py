"""How much of a pre-trained encoder fine-tuning moves: frozen, partial or full (issue 16).

Also which Adam state it starts from (``optim_from_init``: :func:`carry_adam_state`).

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

import torch
from torch import Tensor, nn

from geocsp.errors import CheckpointError
from geocsp.training.config import FinetuneConfig
from geocsp.training.optim_state import unflatten_optimizer_state
from geocsp.training.rundir import RunDir


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


def carry_adam_state(optimizer: torch.optim.Optimizer, model: nn.ModuleDict, init: str | None) -> int:
    """Copy the encoder's Adam state (moments, step) from pre-training run ``init``'s last checkpoint.

    The pre-training optimizer's parameters start with the encoder's, in
    ``named_parameters`` order (``{"encoder", "projection", "objective"}``), as do the
    fine-tuning ones; the head T keeps an empty (fresh) state. A resumed fine-tuning run
    then loads its own checkpoint over this.

    Args:
        optimizer: the fine-tuning Adam, over the encoder's parameters then T.
        model: ``{"encoder", "head"}``.
        init: the pre-training run directory.

    Returns:
        The number of parameters whose state was carried over.

    Raises:
        CheckpointError: when ``init`` has no checkpoint, or its Adam state does not match
            the encoder's parameters.
    """
    ckpt = RunDir(init).latest_checkpoint() if init is not None else None
    if ckpt is None or "optim" not in ckpt.state:
        raise CheckpointError(f"{init}: optim_from_init needs a pre-training run directory with a checkpoint "
                              "(checkpoints/latest); set optim_from_init=false")
    saved = unflatten_optimizer_state(ckpt.optim, ckpt.state["optim"])["state"]
    enc = [p for p in model["encoder"].parameters() if p.requires_grad]
    on_device = bool(optimizer.defaults.get("fused") or optimizer.defaults.get("capturable"))  # step on the device
    for pid, param in enumerate(enc):
        st = saved.get(pid)
        if st is None or tuple(st["exp_avg"].shape) != tuple(param.shape):
            got = None if st is None else tuple(st["exp_avg"].shape)
            raise CheckpointError(f"{init}: pre-training Adam state of encoder parameter {pid} has shape {got}, "
                                  f"expected {tuple(param.shape)}; set optim_from_init=false")
        optimizer.state[param] = {k: v.to(param.device if k != "step" or on_device else "cpu", copy=True)
                                  if isinstance(v, Tensor) else v for k, v in st.items()}
    return len(enc)
