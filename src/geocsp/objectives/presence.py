"""Fine-tuning losses for presence-only labels (registry ``FINETUNE_LOSSES``).

Inputs are logits z = T e(x) (B, Q) at the observed locations, the labels y (B,), and
for losses with ``needs_background`` the logits z^bg (B, Q) at B random background
locations. With p = σ(z), q = σ(z^bg) and neglog(p) = −log(p + 1e-5) (both references):

* ``full`` — Mac Aodha et al. ICCV 2019 "full_loss", CSP spec §5::

      A_ik = neglog(1 − p_ik) (k ≠ y_i),  A_iy = w·neglog(p_iy)   (w = Q by default)
      L = mean_{i,k} A + bg_weight · mean_{i,k} neglog(1 − q_ik)

* ``an_full`` — SINR (Cole et al., ICML 2023; spec peers §5) "assume negative full": the
  same formula with SINR's positive weight w = 2048 and bg weight 1.
* ``an_ssdl`` — same species, different location:
  ``mean_i neglog(p_iy) + mean_i neglog(1 − q_iy)``.
* ``an_slds`` — same location, different species:
  ``mean_i neglog(p_iy) + mean_i neglog(1 − p_ik_i)`` with k_i drawn uniformly from the
  Q − 1 classes other than y_i (no background locations).
* ``*_me`` — SINR's maximum-entropy variants: every negative term neglog(1 − p) becomes
  −H(p) = −[p·neglog(p) + (1 − p)·neglog(1 − p)].
* ``ce`` — softmax cross-entropy over the Q classes.

1 − σ(z) is evaluated as σ(−z) (no cancellation); the +1e-5 is kept, so values match
the references' formula, bounded by −log(1e-5) ≈ 11.5 per entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from geocsp.errors import ConfigError
from geocsp.objectives.api import FINETUNE_LOSSES, register_variant
from geocsp.objectives.functional import EPS, check_nonnegative, check_positive, neg_log
from geocsp.objectives.types import FinetuneLoss, LossOutput

Negatives = Literal["hard", "entropy"]


def negative_term(z: Tensor, negatives: str) -> Tensor:
    """Elementwise loss of treating logit z as a negative.

    Args:
        z: logits, any shape.
        negatives: ``"hard"`` → neglog(1 − σ(z)); ``"entropy"`` → −H(σ(z)).

    Returns:
        Tensor of z's shape.
    """
    if negatives == "hard":
        return neg_log(torch.sigmoid(-z))
    p, q = torch.sigmoid(z), torch.sigmoid(-z)
    return -(p * neg_log(p) + q * neg_log(q))


def _wide(z: Tensor) -> Tensor:
    """float32 for half/bfloat16 logits (autocast), the input itself for float32/float64."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def _neglog_sigmoid_grad(z: Tensor, sign: float) -> Tensor:
    """d/dz of neglog(σ(sign·z)) = −sign·σ(z)σ(−z) / (σ(sign·z) + ε), as a new tensor."""
    p = torch.sigmoid(z)
    q = torch.sub(1.0, p)
    den = (p if sign > 0 else q).add(EPS)
    return p.mul_(q).div_(den).mul_(-sign)


class _HardNegativeSum(torch.autograd.Function):
    """The ``full`` loss numerator, fused: Σ neglog(1 − σ(z)) with label entries reweighted.

    Sums over all entries of z, with the label entries (i, y_i) replaced by
    w·neglog(σ(z_iy)) when ``labels`` is given. One fused pass each way: the autograd graph
    of the plain expression keeps ~5 (B, Q) temporaries and fills two more zero (B, Q)
    gradients for the label gather. Computed in float32 for bf16/fp16 logits (autocast),
    else in the logits' dtype; the gradient is returned in the input dtype.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, labels: Tensor | None, w: float) -> Tensor:
        zf = _wide(z)
        ctx.save_for_backward(z, labels)
        ctx.w = w
        total = torch.neg(zf).sigmoid_().add_(EPS).log_().sum().neg()
        if labels is None:
            return total
        zy = zf.gather(1, labels[:, None]).squeeze(1)
        return total + (w * neg_log(torch.sigmoid(zy)) - neg_log(torch.sigmoid(-zy))).sum()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None]:
        z, labels = ctx.saved_tensors
        zf = _wide(z)
        grad = _neglog_sigmoid_grad(zf, -1.0)
        if labels is not None:
            zy = zf.gather(1, labels[:, None])
            corr = ctx.w * _neglog_sigmoid_grad(zy, 1.0) - _neglog_sigmoid_grad(zy, -1.0)
            grad.scatter_add_(1, labels[:, None], corr)
        return grad.mul_(g).to(z.dtype), None, None


def _check_background(name: str, logits: Tensor, bg_logits: Tensor | None) -> Tensor:
    if bg_logits is None or bg_logits.shape[1:] != logits.shape[1:]:
        got = None if bg_logits is None else tuple(bg_logits.shape)
        raise ConfigError(f"{name} needs bg_logits of shape (B, {logits.shape[1]}), got {got}")
    return bg_logits


def _check_negatives(owner: str, negatives: str) -> None:
    if negatives not in ("hard", "entropy"):
        raise ConfigError(f"{owner}.negatives must be 'hard' or 'entropy', got {negatives!r}")


@dataclass(frozen=True)
class FullConfig:
    """Config of the ``full`` presence-only loss (Mac Aodha et al. 2019; spec §5).

    Args:
        pos_weight: weight w of the positive entries; None = Q, the number of classes.
        bg_weight: weight of the background term (reference ``rand_sample_weight``).
        negatives: ``"hard"`` (assume negative) or ``"entropy"`` (SINR's max-entropy).
    """

    pos_weight: float | None = None
    bg_weight: float = 1.0
    negatives: Negatives = "hard"

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.pos_weight is not None:
            check_positive(name, pos_weight=self.pos_weight)
        check_nonnegative(name, bg_weight=self.bg_weight)
        _check_negatives(name, self.negatives)


@dataclass(frozen=True)
class AnFullConfig(FullConfig):
    """SINR ``an_full``: positive weight 2048 (SINR's default ``pos_weight``)."""

    pos_weight: float | None = 2048.0


@dataclass(frozen=True)
class AnFullMEConfig(AnFullConfig):
    """SINR ``an_full_me``: ``an_full`` with max-entropy negatives."""

    negatives: Negatives = "entropy"


@FINETUNE_LOSSES.register("full", aliases=("full_loss",), config=FullConfig)
class FullLoss(FinetuneLoss):
    """Presence-only "full" loss: weighted positives, assume-negative rest and background.

    Args:
        config: a :class:`FullConfig` (``AnFullConfig`` for SINR's ``an_full``).
    """

    needs_background = True

    def __init__(self, config: FullConfig) -> None:
        super().__init__()
        self.config = config
        # a zero-weight background term costs nothing: the trainer then draws no
        # background locations and runs no encoder pass for them
        self.needs_background = config.bg_weight > 0

    def forward(
        self, logits: Tensor, labels: Tensor, bg_logits: Tensor | None = None
    ) -> LossOutput:
        """Compute the loss.

        Args:
            logits: (B, Q) class logits at the observed locations.
            labels: (B,) int64 class indices.
            bg_logits: (B', Q) class logits at random background locations (ignored, and
                may be None, when ``bg_weight`` is 0).

        Returns:
            total = ``presence + bg_weight * background``, and those two unweighted terms
            (only ``presence`` when ``bg_weight`` is 0).

        Raises:
            ConfigError: if ``bg_logits`` is missing or has the wrong number of classes.
        """
        c = self.config
        w = float(logits.shape[1]) if c.pos_weight is None else c.pos_weight
        if not self.needs_background:
            presence = _HardNegativeSum.apply(logits, labels.long(), w) / logits.numel() \
                if c.negatives == "hard" else self._soft_presence(logits, labels, w)
            return LossOutput(presence, {"presence": presence})
        bg = _check_background(type(self).__name__, logits, bg_logits)
        if c.negatives == "hard":  # fused: same value, fewer (B, Q) temporaries
            presence = _HardNegativeSum.apply(logits, labels.long(), w) / logits.numel()
            background = _HardNegativeSum.apply(bg, None, 0.0) / bg.numel()
            terms = {"presence": presence, "background": background}
            return LossOutput(presence + c.bg_weight * background, terms)
        presence = self._soft_presence(logits, labels, w)
        terms = {"presence": presence, "background": negative_term(bg, c.negatives).mean()}
        return LossOutput(presence + c.bg_weight * terms["background"], terms)

    def _soft_presence(self, logits: Tensor, labels: Tensor, w: float) -> Tensor:
        """mean_{i,k} A for the non-fused negative terms."""
        neg = negative_term(logits, self.config.negatives)
        ar = torch.arange(logits.shape[0], device=logits.device)
        # replace the positive entries without an (B, Q) scatter copy: sum, then correct
        pos = w * neg_log(torch.sigmoid(logits[ar, labels])) - neg[ar, labels]
        return (neg.sum() + pos.sum()) / neg.numel()


@dataclass(frozen=True)
class AnConfig:
    """Config of SINR's ``an_ssdl`` / ``an_slds``.

    Args:
        negatives: ``"hard"`` (assume negative) or ``"entropy"`` (max-entropy ``_me``).
    """

    negatives: Negatives = "hard"

    def __post_init__(self) -> None:
        _check_negatives(type(self).__name__, self.negatives)


@dataclass(frozen=True)
class AnMEConfig(AnConfig):
    """SINR's max-entropy variant."""

    negatives: Negatives = "entropy"


def _positive_term(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    ar = torch.arange(logits.shape[0], device=logits.device)
    return ar, neg_log(torch.sigmoid(logits[ar, labels])).mean()


@FINETUNE_LOSSES.register("an_ssdl", config=AnConfig)
class AnSSDL(FinetuneLoss):
    """SINR L_AN-SSDL: positives vs the same species at random background locations.

    Args:
        config: an :class:`AnConfig`.
    """

    needs_background = True

    def __init__(self, config: AnConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self, logits: Tensor, labels: Tensor, bg_logits: Tensor | None = None
    ) -> LossOutput:
        """Compute the loss (arguments as :meth:`FullLoss.forward`; B' must equal B).

        Returns:
            total = ``presence + background``.

        Raises:
            ConfigError: if ``bg_logits`` is missing or mis-shaped.
        """
        bg = _check_background(type(self).__name__, logits, bg_logits)
        if bg.shape[0] != logits.shape[0]:
            raise ConfigError(
                f"AnSSDL needs one background row per sample, got {bg.shape[0]} for {logits.shape[0]}"
            )
        ar, presence = _positive_term(logits, labels)
        background = negative_term(bg[ar, labels], self.config.negatives).mean()
        return LossOutput(presence + background, {"presence": presence, "background": background})


@FINETUNE_LOSSES.register("an_slds", config=AnConfig)
class AnSLDS(FinetuneLoss):
    """SINR L_AN-SLDS: positives vs a different random species at the same location.

    Args:
        config: an :class:`AnConfig`.
    """

    needs_background = False

    def __init__(self, config: AnConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self,
        logits: Tensor,
        labels: Tensor,
        bg_logits: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """Compute the loss; ``bg_logits`` is ignored.

        Args:
            logits: (B, Q) class logits, Q >= 2.
            labels: (B,) int64 class indices.
            bg_logits: unused.
            generator: RNG on ``labels.device`` for the other classes (default: torch's
                global RNG, as SINR).

        Returns:
            total = ``presence + other_class``.

        Raises:
            ConfigError: if Q < 2.
        """
        q = logits.shape[1]
        if q < 2:
            raise ConfigError(f"AnSLDS needs at least 2 classes, got {q}")
        other = torch.randint(0, q - 1, labels.shape, generator=generator, device=labels.device)
        other = other + (other >= labels).long()  # uniform over the classes != y_i
        ar, presence = _positive_term(logits, labels)
        negative = negative_term(logits[ar, other], self.config.negatives).mean()
        return LossOutput(presence + negative, {"presence": presence, "other_class": negative})


@dataclass(frozen=True)
class CEConfig:
    """Config of the softmax cross-entropy loss.

    Args:
        label_smoothing: in [0, 1), as ``torch.nn.functional.cross_entropy``.
    """

    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"CEConfig.label_smoothing must be in [0, 1), got {self.label_smoothing!r}"
            )


@FINETUNE_LOSSES.register("ce", aliases=("softmax",), config=CEConfig)
class SoftmaxCE(FinetuneLoss):
    """Softmax cross-entropy over the Q classes, mean over the batch (no background).

    Args:
        config: a :class:`CEConfig`.
    """

    def __init__(self, config: CEConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self, logits: Tensor, labels: Tensor, bg_logits: Tensor | None = None
    ) -> LossOutput:
        """Mean CE of (B, Q) logits against (B,) int64 labels; ``bg_logits`` is ignored."""
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        return LossOutput(loss, {"ce": loss})


# SINR's variants: the same loss classes, only the config defaults differ.
register_variant(FINETUNE_LOSSES, "an_full", FullLoss)(AnFullConfig)
register_variant(FINETUNE_LOSSES, "an_full_me", FullLoss)(AnFullMEConfig)
register_variant(FINETUNE_LOSSES, "an_ssdl_me", AnSSDL)(AnMEConfig)
register_variant(FINETUNE_LOSSES, "an_slds_me", AnSLDS)(AnMEConfig)
