"""Plain types shared by every objective: batches, outputs, the distributed context, bases.

Notation (see ``geocsp`` docs): B batch rows on this process, M = world_size * B global
columns, d location-embedding dim, D image-feature dim, C random negative locations per
sample, Q classes.

Every objective returns a :class:`LossOutput`: ``total`` is what is back-propagated, and
``terms`` holds the **unweighted** value of each term that was computed (a term whose
weight is 0 is not computed and is absent), so ``total = sum_k weight_k * terms[k]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from geocsp.errors import ConfigError

EncodeFn = Callable[[Tensor], Tensor]
"""An encoder pass: (M, k) tensor -> (M, d) tensor (location encoder, or the projection W)."""


@dataclass
class LossOutput:
    """A loss value plus its named, unweighted terms.

    Args:
        total: scalar tensor to back-propagate.
        terms: name -> scalar tensor of each computed term (e.g. ``L_B``, ``L_L``, ``L_D``).
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class PretrainBatch:
    """One pre-training batch of (location, image feature) pairs.

    Args:
        lonlat: (B, 2) longitude, latitude in degrees.
        feats: (B, D) image features F(I).
        neg_lonlat: (B, C, 2) random negative locations in degrees, or None when the
            objective's ``num_negatives`` is 0.
    """

    lonlat: Tensor
    feats: Tensor
    neg_lonlat: Tensor | None = None


def _identity(t: Tensor) -> Tensor:
    """The single-process gather: returns its (B, k) input unchanged."""
    return t


@dataclass(frozen=True)
class DistContext:
    """How in-batch terms see the other processes' rows.

    Args:
        gather: all-gather *with gradient*: (B, k) local tensor -> (world_size * B, k),
            ranks concatenated in order.
        rank: index of this process.
        world_size: number of processes.

    Raises:
        ConfigError: unless 0 <= rank < world_size.
    """

    gather: Callable[[Tensor], Tensor] = _identity
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        """Validate rank and world size."""
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"DistContext: need 0 <= rank < world_size, got rank={self.rank}, "
                f"world_size={self.world_size}"
            )


LOCAL = DistContext()
"""The single-process context: identity gather, rank 0 of 1."""


class PretrainObjective(nn.Module):
    """Base of the pre-training objectives (see docs/design.md "objectives/").

    Attributes:
        num_negatives: C, random negative locations per sample the trainer must put in
            ``PretrainBatch.neg_lonlat`` (0: none, pass None).
        uses_image_projection: False when ``encode_img`` (W) is not used, so W gets no
            gradient (e.g. MSE).
    """

    num_negatives: int = 0
    uses_image_projection: bool = True


class FinetuneLoss(nn.Module):
    """Base of the fine-tuning losses.

    Attributes:
        needs_background: the trainer must pass ``bg_logits`` at random locations.
    """

    needs_background: bool = False
