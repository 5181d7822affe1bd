"""The B/L/D machinery shared by CSP-MC-* and CSP-NCE-* (spec §4.3, §4.4).

Both families compute L = L_B + w1·L_L + w2·L_D from the same embeddings: u (first
dropout pass), v (projected image features), u' (second dropout pass, for L_D) and the
random negative locations n (for L_L). They differ only in how the three blocks are scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from geocsp.objectives.functional import (
    check_negatives,
    check_nonnegative,
    encode_locations,
    weighted_total,
)
from geocsp.objectives.types import EncodeFn, LossOutput, PretrainBatch, PretrainObjective


@dataclass(frozen=True)
class AuxTermsConfig:
    """The auxiliary-term fields shared by CSP-MC-* and CSP-NCE-* (spec §4.3, §4.4).

    Args:
        neg_loc_weight: α1 / β1, weight of L_L (0 skips the negative-location pass).
        simcse_weight: α2 / β2, weight of L_D (0 skips the second dropout pass).
        num_negatives: C, random negative locations per sample.
    """

    neg_loc_weight: float = 1.0
    simcse_weight: float = 1.0
    num_negatives: int = 1

    def __post_init__(self) -> None:
        """Validate the weights and C.

        Raises:
            ConfigError: on a negative or non-finite weight, or C invalid for α1.
        """
        name = type(self).__name__
        check_nonnegative(
            name, neg_loc_weight=self.neg_loc_weight, simcse_weight=self.simcse_weight
        )
        check_negatives(name, self.neg_loc_weight, self.num_negatives)


class AuxTermsObjective(PretrainObjective):
    """Base of the objectives L = L_B + w1·L_L + w2·L_D over an :class:`AuxTermsConfig`.

    A term whose weight is 0 is neither computed nor given its location pass.

    Args:
        config: the objective's config.
        loc_dim: d (unused; these objectives have no parameters).
        img_dim: D (unused).
    """

    config: AuxTermsConfig

    def __init__(self, config: AuxTermsConfig, *, loc_dim: int, img_dim: int) -> None:
        super().__init__()
        self.config = config
        self.num_negatives = config.num_negatives if config.neg_loc_weight > 0 else 0

    def embed(
        self, batch: PretrainBatch, encode_loc: EncodeFn, encode_img: EncodeFn
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """All L2-normalised embeddings the terms need, one ``encode_loc`` call.

        Args:
            batch: (B, 2) degrees, (B, D) features, (B, C, 2) negatives if w1 > 0.
            encode_loc: (M, 2) degrees -> (M, d), dropout active.
            encode_img: (B, D) -> (B, d), the projection W.

        Returns:
            u (B, d), v (B, d), u' (B, d) or None (no L_D), negatives (B, C, d) or None
            (no L_L).

        Raises:
            ConfigError: if L_L is on and ``batch.neg_lonlat`` is missing or mis-shaped.
        """
        c = self.config
        e, e2, en = encode_locations(
            batch, encode_loc, second_pass=c.simcse_weight > 0, negatives=c.neg_loc_weight > 0
        )
        u = F.normalize(e, dim=-1)
        v = F.normalize(encode_img(batch.feats), dim=-1)
        u2 = None if e2 is None else F.normalize(e2, dim=-1)
        n = None if en is None else F.normalize(en, dim=-1)
        return u, v, u2, n

    def output(self, terms: dict[str, Tensor]) -> LossOutput:
        """``LossOutput`` with total = Σ terms, L_L and L_D scaled by their weights.

        Args:
            terms: the unweighted scalar terms (``L_B`` and any of ``L_L``, ``L_D``, ...).

        Returns:
            The weighted total and ``terms`` unchanged.
        """
        weights = {"L_L": self.config.neg_loc_weight, "L_D": self.config.simcse_weight}
        return LossOutput(weighted_total(terms, weights), terms)
