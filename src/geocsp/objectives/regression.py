"""MSE regression of image features from location embeddings (spec §4.5, ``l2regress``).

Mai et al., ICML 2023, arXiv 2305.01118: the "MSE" baseline of Tables 1-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from geocsp.objectives.api import OBJECTIVES
from geocsp.objectives.functional import encode_locations
from geocsp.objectives.types import (
    DistContext,
    EncodeFn,
    LossOutput,
    PretrainBatch,
    PretrainObjective,
)


@dataclass(frozen=True)
class MSEConfig:
    """Config of the MSE objective (no fields: the decoder size comes from d and D)."""


@OBJECTIVES.register("mse", aliases=("l2regress",), config=MSEConfig)
class FeatureRegression(PretrainObjective):
    """MSE: L = mean over all B×D elements of (loc_dec(e(x_i)) − F(I_i))².

    ``loc_dec`` = Linear(d → D) is owned (and trained) by this objective; the target is
    the raw, unnormalised image feature. ``encode_img`` (W) is not used.

    Args:
        config: an :class:`MSEConfig`.
        loc_dim: d, the location-embedding dimension.
        img_dim: D, the image-feature dimension.
    """

    uses_image_projection = False

    def __init__(self, config: MSEConfig, *, loc_dim: int, img_dim: int) -> None:
        super().__init__()
        self.config = config
        self.loc_dec = nn.Linear(loc_dim, img_dim)

    def forward(
        self,
        batch: PretrainBatch,
        encode_loc: EncodeFn,
        encode_img: EncodeFn,
        dist: DistContext | None = None,
    ) -> LossOutput:
        """Compute the loss (arguments as :meth:`ContrastiveMC.forward`).

        ``dist`` is unused: the loss is a per-row mean, so averaging the ranks' losses gives
        the global loss when ranks have equal batch sizes.

        Returns:
            total and the term ``L_MSE`` (equal to it).
        """
        e, _, _ = encode_locations(batch, encode_loc, second_pass=False, negatives=False)
        loss = F.mse_loss(self.loc_dec(e), batch.feats.to(e.dtype))
        return LossOutput(loss, {"L_MSE": loss})
