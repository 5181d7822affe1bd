"""Binary (NCE) contrastive objectives CSP-NCE-BLD / -BL / -B.

Mai et al., ICML 2023, arXiv 2305.01118, Eq. 1/3; spec §4.4 (reference ``imgcontloss*``).
With bce(p) = −log(p + 1e-5) and S_ij = σ(u_i·v_j) (cosine similarity, no temperature):

    L_B,i = [ (N−1)·bce(S_ii) + Σ_{j≠i} bce(1 − S_ij) ] / (N−1)
    L_L,i = mean_c bce(1 − σ(n_ic·v_i))
    L_D,i = L_B,i with S'_ij = σ(u_i·u'_j)
    L     = mean_i L_B,i + β1·mean_i L_L,i + β2·mean_i L_D,i

N is the number of (gathered) columns; a batch of one has no negatives and keeps only the
positive term (the reference would divide by zero). 1 − σ(s) is computed as σ(−s).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from geocsp.objectives.api import OBJECTIVES, register_variant
from geocsp.objectives.aux_terms import AuxTermsConfig, AuxTermsObjective
from geocsp.objectives.functional import inbatch_targets, neg_log
from geocsp.objectives.types import LOCAL, DistContext, EncodeFn, LossOutput, PretrainBatch


@dataclass(frozen=True)
class NCEConfig(AuxTermsConfig):
    """Config of CSP-NCE-BLD (spec §4.4): β1 = ``neg_loc_weight``, β2 = ``simcse_weight``."""


def binary_inbatch(rows: Tensor, cols: Tensor, dist: DistContext) -> Tensor:
    """mean_i L_B,i: the positive weighted like the average of the N−1 negatives.

    Args:
        rows: (B, d) local normalised embeddings.
        cols: (N, d) gathered normalised embeddings; row i's positive is column rank·B + i.
        dist: distributed context.

    Returns:
        Scalar mean over the B rows.
    """
    sim = rows @ cols.T
    target = inbatch_targets(rows, dist)
    ar = torch.arange(rows.shape[0], device=rows.device)
    pos = neg_log(torch.sigmoid(sim[ar, target]))
    is_pos = F.one_hot(target, cols.shape[0]).bool()
    neg = neg_log(torch.sigmoid(-sim)).masked_fill(is_pos, 0.0).sum(1)
    return (pos + neg / max(cols.shape[0] - 1, 1)).mean()


@OBJECTIVES.register("csp-nce-bld", aliases=("imgcontlosssimcse",), config=NCEConfig)
class ContrastiveNCE(AuxTermsObjective):
    """CSP-NCE-BLD: binary cross-entropy contrastive loss, L_B + β1·L_L + β2·L_D (spec §4.4).

    Terms with weight 0 are neither computed nor given their location pass. Under
    ``dist``, L_B / L_D use local rows × gathered columns.

    Args:
        config: an :class:`NCEConfig` (or an ablation subclass).
        loc_dim: d (unused; the objective has no parameters).
        img_dim: D (unused).
    """

    def forward(
        self,
        batch: PretrainBatch,
        encode_loc: EncodeFn,
        encode_img: EncodeFn,
        dist: DistContext | None = None,
    ) -> LossOutput:
        """Compute the loss (arguments as :meth:`ContrastiveMC.forward`).

        Returns:
            total and the unweighted terms ``L_B`` (+ ``L_L``, ``L_D``).

        Raises:
            ConfigError: if β1 > 0 and ``batch.neg_lonlat`` is missing or mis-shaped.
        """
        dist = dist or LOCAL
        u, v, u2, n = self.embed(batch, encode_loc, encode_img)
        terms = {"L_B": binary_inbatch(u, dist.gather(v), dist)}
        if n is not None:
            s_neg = torch.einsum("bcd,bd->bc", n, v)
            terms["L_L"] = neg_log(torch.sigmoid(-s_neg)).mean()
        if u2 is not None:
            terms["L_D"] = binary_inbatch(u, dist.gather(u2), dist)
        return self.output(terms)


@register_variant(OBJECTIVES, "csp-nce-bl", ContrastiveNCE, aliases=("imgcontloss",))
@dataclass(frozen=True)
class CspNceBlConfig(NCEConfig):
    """CSP-NCE-BL (reference ``imgcontloss``): no SimCSE term (β2 = 0)."""

    simcse_weight: float = 0.0


@register_variant(OBJECTIVES, "csp-nce-b", ContrastiveNCE, aliases=("imgcontlossnolocneg",))
@dataclass(frozen=True)
class CspNceBConfig(NCEConfig):
    """CSP-NCE-B (reference ``imgcontlossnolocneg``): in-batch term only."""

    neg_loc_weight: float = 0.0
    simcse_weight: float = 0.0
