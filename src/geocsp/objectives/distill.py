"""Distillation from the image classifier: the fine-tuning loss ``distill`` (issue 16).

Self-training of the location prior on image–location pairs without labels: each such row
carries the few-shot image classifier's probabilities P(y|I) (top-k, sparse), and the prior
σ(T e(x)) is fitted to them as soft targets, beside a ``base`` loss (default ``full``) on
the labelled subset. The soft term generalises the base loss's presence term from a
one-hot label to a target distribution t over the Q classes::

    sigmoid bases (full, an_*):  L_soft = mean_{i,k} [ neglog(1 − p_ik)
                                         + t_ik (w·neglog(p_ik) − neglog(1 − p_ik)) ]
    softmax base (ce):           L_soft = mean_i −Σ_k t_ik log softmax(z_i)_k

with w the base's positive weight (Q by default, as ``full``), so a one-hot t gives exactly
the base's presence term (``mode: soft``).

Plain distillation fits the prior to E[P(y|I) | x], the true P(y|x) mixed by the
classifier's confusions: sister species that the image confuses but the location separates
get the same prior, which is what the fusion needed the prior for. ``mode: em`` (default)
instead maximises the likelihood of each soft row's image under the prior, with
P(I|y) ∝ P(y|I) / π_train(y) (π_train: the classifier's training class frequencies)::

    L_em = −mean_i log Σ_k π_θ(k|x_i) t_ik,   t_ik ∝ P(k|I_i) / π_train(k)
    π_θ(k|x) = σ(z_k) / Σ_j σ(z_j)  (sigmoid bases),  softmax(z)_k  (``ce``)

Its gradient is the cross-entropy to the posterior t_ik π_θ(k|x_i) / Σ_j t_ij π_θ(j|x_i)
(one EM step per batch, Saerens et al. 2002): the prior itself separates what the image
confuses. The total is ``base + weight · L_soft`` (or ``L_em``).

Targets (:func:`sharpen_targets`): t ∝ P(y|I)^(1/temperature) over the stored top-k,
renormalised; rows whose top probability is below ``threshold`` are dropped. The rows and
the probability key (``auto``: the classifier of the run's label ratio) are chosen by the
trainer (:mod:`geocsp.training.distill`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from geocsp.errors import ConfigError
from geocsp.objectives.api import FINETUNE_LOSSES, build
from geocsp.objectives.functional import check_nonnegative, check_positive, neg_log
from geocsp.objectives.presence import SoftmaxCE
from geocsp.objectives.types import FinetuneLoss, LossOutput


@dataclass(frozen=True)
class DistillConfig:
    """Config of the ``distill`` fine-tuning loss.

    Defaults: temperature 1 and threshold 0 fit the prior to the classifier's own
    probabilities on every row, so with a calibrated classifier the minimiser at x is
    E[P(y|I) | x] = P(y|x) (thresholding or sharpening biases it toward the classes the
    classifier is sure of); weight 1 counts a soft row like a labelled one.

    Args:
        base: the loss on the labelled subset (a ``FINETUNE_LOSSES`` name, not ``distill``).
        base_args: that loss's config fields.
        mode: ``soft`` fits the prior to the targets (plain distillation); ``em`` maximises
            the likelihood of the soft rows' images under the prior (see the module
            docstring), with the targets divided by the classifier's training class frequencies.
        weight: weight of the soft term (0 = the base loss alone).
        temperature: t ∝ p^(1/temperature) (< 1 sharpens, > 1 flattens).
        threshold: rows whose top stored probability is below it are not used, in [0, 1).
        balance: weight each class's soft targets by 1 / its soft mass over all soft rows
            (floored at 1 row, mean weight 1): the unlabeled rows follow the observation
            effort, so without it a common class's range outweighs a rare one's (the reported
            splits are usually class-balanced). ``soft``: the positive terms are weighted;
            ``em``: each row by its targets' mean class weight.
        topk: classes kept per row (the largest probabilities; sparse inputs keep theirs).
        batch_size: soft rows drawn (uniformly, with replacement) per optimizer step.
        splits: splits whose rows (with a location) give soft targets; ``train`` rows of
            the labelled subset are left out (they have their hard label). A split the
            dataset does not have is skipped.
        probs_key: the probability set; ``auto`` = the classifier trained on the run's
            labels (``ratio{λ:.3f}``, ``default`` at λ = 1), as for evaluation.
    """

    base: str = "full"
    base_args: dict[str, Any] = field(default_factory=dict)
    mode: Literal["em", "soft"] = "em"
    weight: float = 1.0
    temperature: float = 1.0
    threshold: float = 0.0
    balance: bool = True
    topk: int = 20
    batch_size: int = 1024
    splits: tuple[str, ...] = ("unlabeled", "train")
    probs_key: str = "auto"

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_nonnegative(name, weight=self.weight)
        if self.mode not in ("em", "soft"):
            raise ConfigError(f"{name}.mode must be 'em' or 'soft', got {self.mode!r}")
        check_positive(name, temperature=self.temperature, topk=self.topk, batch_size=self.batch_size)
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"{name}.threshold must be in [0, 1), got {self.threshold!r}")
        if not self.splits or not all(isinstance(s, str) and s for s in self.splits):
            raise ConfigError(f"{name}.splits must be a non-empty list of split names, got {self.splits!r}")
        if FINETUNE_LOSSES.canonical(self.base) == "distill":
            raise ConfigError(f"{name}.base must be another fine-tuning loss, not 'distill'")


def sharpen_targets(values: Tensor, temperature: float, threshold: float) -> tuple[Tensor, Tensor]:
    """Soft targets from stored top-k probabilities.

    Args:
        values: (N, k) probabilities (>= 0) of each row's k kept classes.
        temperature: t ∝ values^(1/temperature), renormalised per row.
        threshold: rows whose largest value is below it are dropped.

    Returns:
        ``(targets (N, k) float32, keep (N,) bool)``; targets of dropped rows are still
        computed (rows with an all-zero input stay zero).
    """
    v = values.double().clamp_min(0.0)
    keep = v.amax(dim=1) >= threshold
    t = v.pow(1.0 / temperature) if temperature != 1.0 else v
    return (t / t.sum(dim=1, keepdim=True).clamp_min(1e-300)).float(), keep


@FINETUNE_LOSSES.register("distill", aliases=("self-training",), config=DistillConfig)
class DistillLoss(FinetuneLoss):
    """A base presence loss on labelled rows plus soft targets from the image classifier.

    The trainer calls :meth:`forward` on the labelled batch (as for the base loss) and
    :meth:`soft` on a batch of soft-target rows, then :meth:`combine`.

    Args:
        config: a :class:`DistillConfig`.
    """

    needs_soft_targets = True

    def __init__(self, config: DistillConfig) -> None:
        super().__init__()
        self.config = config
        self.base = build(FINETUNE_LOSSES, config.base, dict(config.base_args))
        self.needs_background = bool(getattr(self.base, "needs_background", False))

    def forward(self, logits: Tensor, labels: Tensor, bg_logits: Tensor | None = None) -> LossOutput:
        """The base loss on the labelled batch (arguments as the base loss's ``forward``).

        Returns:
            The base loss's output.
        """
        out: LossOutput = self.base(logits, labels, bg_logits)
        return out

    def soft(self, logits: Tensor, index: Tensor, targets: Tensor, class_weight: Tensor | None = None) -> Tensor:
        """The soft-target term (module docstring) of one batch.

        Args:
            logits: (B, Q) class logits at the soft rows' locations.
            index: (B, k) int64 class indices of the targets.
            targets: (B, k) target probabilities (rows sum to 1).
            class_weight: (B, k) weight of each target's class (``balance``), or None for 1.

        Returns:
            Scalar tensor.
        """
        z = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        t = targets.to(z.dtype)
        c = class_weight.to(z.dtype) if class_weight is not None else None
        if self.config.mode == "em":
            if isinstance(self.base, SoftmaxCE):
                log_prior = torch.log_softmax(z, dim=1)
            else:
                log_sig = F.logsigmoid(z)
                log_prior = log_sig - torch.logsumexp(log_sig, dim=1, keepdim=True)
            nll = -torch.logsumexp(log_prior.gather(1, index) + torch.log(t.clamp_min(1e-30)), dim=1)
            return nll.mean() if c is None else (nll * (t * c).sum(dim=1)).mean()
        tp = t if c is None else t * c  # the positive terms' weights
        if isinstance(self.base, SoftmaxCE):
            return -(tp * torch.log_softmax(z, dim=1).gather(1, index)).sum(dim=1).mean()
        pos = getattr(getattr(self.base, "config", None), "pos_weight", None)
        w = float(z.shape[1]) if pos is None else float(pos)
        neg = neg_log(torch.sigmoid(-z))
        zk = z.gather(1, index)
        corr = w * tp * neg_log(torch.sigmoid(zk)) - t * neg_log(torch.sigmoid(-zk))
        return (neg.sum() + corr.sum()) / neg.numel()

    def combine(self, base: LossOutput, soft: Tensor) -> LossOutput:
        """``base.total + weight · soft``, with the soft term logged as ``distill``.

        Args:
            base: the labelled batch's :meth:`forward` output.
            soft: the :meth:`soft` term.

        Returns:
            The combined loss.
        """
        return LossOutput(base.total + self.config.weight * soft, {**base.terms, "distill": soft})
