"""Softmax (multi-class) contrastive objectives: CSP-MC-* and the symmetric CLIP loss.

CSP: Mai et al., "CSP: Self-Supervised Contrastive Spatial Pre-Training for
Geospatial-Visual Representations", ICML 2023, arXiv 2305.01118 (spec §4.3).
CLIP: the SatCLIP loss (Klemmer et al., AAAI 2025; spec peers §2) with GeoCLIP's queue of
past locations (Vivanco Cepeda et al., NeurIPS 2023; spec peers §1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geocsp.errors import ConfigError
from geocsp.objectives.api import OBJECTIVES, register_variant
from geocsp.objectives.aux_terms import AuxTermsConfig, AuxTermsObjective
from geocsp.objectives.functional import check_positive, inbatch_ce, weighted_total
from geocsp.objectives.queue import LocationQueue
from geocsp.objectives.types import (
    LOCAL,
    DistContext,
    EncodeFn,
    LossOutput,
    PretrainBatch,
    PretrainObjective,
)


@dataclass(frozen=True)
class MCConfig(AuxTermsConfig):
    """Config of CSP-MC-BLD (spec §4.3). Defaults are the paper's (A.4).

    Args:
        tau_inbatch: τ0, divides the in-batch logits (paper 1; reference scripts 20).
        tau_negloc: τ1, divides the random-location logits.
        tau_simcse: τ2, divides the SimCSE logits.
        symmetric: also add the transposed (image -> locations) CE to L_B
            (reference ``contsoftmaxsym``; summed, not averaged).

    The weights α1, α2 and C are the fields of :class:`AuxTermsConfig`.
    """

    tau_inbatch: float = 1.0
    tau_negloc: float = 1.0
    tau_simcse: float = 1.0
    symmetric: bool = False

    def __post_init__(self) -> None:
        """Validate the temperatures, then the weights and C.

        Raises:
            ConfigError: on a non-positive or non-finite field, or C invalid for α1.
        """
        check_positive(
            type(self).__name__,
            tau_inbatch=self.tau_inbatch,
            tau_negloc=self.tau_negloc,
            tau_simcse=self.tau_simcse,
        )
        super().__post_init__()


def negloc_ce(u: Tensor, v: Tensor, n: Tensor, tau: float) -> Tensor:
    """L_L: mean CE of ``[u_i·v_i, n_i1·v_i, ..., n_iC·v_i] / τ1`` with target 0.

    Args:
        u: (B, d) normalised location embeddings (the same tensor as in L_B).
        v: (B, d) normalised image embeddings.
        n: (B, C, d) normalised embeddings of the random negative locations.
        tau: τ1.

    Returns:
        Scalar mean over the B rows.
    """
    pos = (u * v).sum(-1, keepdim=True)
    neg = torch.einsum("bcd,bd->bc", n, v)
    logits = torch.cat([pos, neg], 1) / tau
    return F.cross_entropy(logits, torch.zeros(u.shape[0], dtype=torch.long, device=u.device))


@OBJECTIVES.register("csp-mc-bld", aliases=("contsoftmax",), config=MCConfig)
class ContrastiveMC(AuxTermsObjective):
    """CSP-MC-BLD: L = L_B + α1·L_L + α2·L_D, softmax CE terms (spec §4.3).

    Cosine similarities of L2-normalised embeddings u = e(x)/‖e(x)‖, v = Wf/‖Wf‖; the
    temperatures divide the logits; every CE is a mean over the batch. Terms with weight 0
    are neither computed nor given their location pass (the reference runs all three
    passes regardless). Under ``dist``, L_B / L_D use local rows × gathered columns.

    Args:
        config: an :class:`MCConfig` (or one of its ablation subclasses).
        loc_dim: d (unused; the objective has no parameters).
        img_dim: D (unused).
    """

    config: MCConfig

    def forward(
        self,
        batch: PretrainBatch,
        encode_loc: EncodeFn,
        encode_img: EncodeFn,
        dist: DistContext | None = None,
    ) -> LossOutput:
        """Compute the loss.

        Args:
            batch: (B, 2) degrees, (B, D) features, (B, C, 2) negatives if α1 > 0.
            encode_loc: (M, 2) degrees -> (M, d), dropout active.
            encode_img: (B, D) -> (B, d), the projection W.
            dist: distributed context; None = single process.

        Returns:
            total and the unweighted terms ``L_B`` (+ ``L_B_sym``, ``L_L``, ``L_D``).

        Raises:
            ConfigError: if α1 > 0 and ``batch.neg_lonlat`` is missing or mis-shaped.
        """
        c, dist = self.config, dist or LOCAL
        u, v, u2, n = self.embed(batch, encode_loc, encode_img)
        terms = {"L_B": inbatch_ce(u, dist.gather(v), 1.0 / c.tau_inbatch, dist)}
        if c.symmetric:
            terms["L_B_sym"] = inbatch_ce(v, dist.gather(u), 1.0 / c.tau_inbatch, dist)
        if n is not None:
            terms["L_L"] = negloc_ce(u, v, n, c.tau_negloc)
        if u2 is not None:
            terms["L_D"] = inbatch_ce(u, dist.gather(u2), 1.0 / c.tau_simcse, dist)
        return self.output(terms)


# Table 2 ablations and the symmetric variant: same class, only the config defaults differ.


@register_variant(OBJECTIVES, "csp-mc-bl", ContrastiveMC)
@dataclass(frozen=True)
class CspMcBlConfig(MCConfig):
    """CSP-MC-BL: no SimCSE term (α2 = 0)."""

    simcse_weight: float = 0.0


@register_variant(OBJECTIVES, "csp-mc-bd", ContrastiveMC)
@dataclass(frozen=True)
class CspMcBdConfig(MCConfig):
    """CSP-MC-BD: no random-location term (α1 = 0)."""

    neg_loc_weight: float = 0.0


@register_variant(OBJECTIVES, "csp-mc-b", ContrastiveMC)
@dataclass(frozen=True)
class CspMcBConfig(MCConfig):
    """CSP-MC-B: in-batch term only (α1 = α2 = 0)."""

    neg_loc_weight: float = 0.0
    simcse_weight: float = 0.0


@register_variant(OBJECTIVES, "csp-mc-bld-sym", ContrastiveMC, aliases=("contsoftmaxsym",))
@dataclass(frozen=True)
class CspMcBldSymConfig(MCConfig):
    """CSP-MC-BLD with the symmetric in-batch term (reference ``contsoftmaxsym``)."""

    symmetric: bool = True


@dataclass(frozen=True)
class ClipConfig:
    """Config of the symmetric CLIP loss.

    Args:
        init_temperature: initial temperature; the logit scale starts at log(1/T).
        max_logit_scale: the scale exp(s) is clamped to at most this value.
        learn_temperature: train the logit scale (else it is a fixed buffer).
        queue_size: K past locations re-encoded as extra image -> location negatives
            (GeoCLIP-style); 0 disables the queue.
    """

    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    learn_temperature: bool = True
    queue_size: int = 0

    def __post_init__(self) -> None:
        """Validate the temperature, the scale bound and K.

        Raises:
            ConfigError: on a non-positive temperature or bound, or K < 0.
        """
        check_positive(
            "ClipConfig",
            init_temperature=self.init_temperature,
            max_logit_scale=self.max_logit_scale,
        )
        if self.queue_size < 0:
            raise ConfigError(f"ClipConfig.queue_size must be >= 0, got {self.queue_size}")


@OBJECTIVES.register("clip", aliases=("satclip",), config=ClipConfig)
class SymmetricClip(PretrainObjective):
    """Symmetric CLIP loss with a learnable logit scale (SatCLIP), optional location queue.

    L = ½ [CE(loc -> images) + CE(image -> locations)], logits = exp(s)·u·vᵀ with
    exp(s) ≤ ``max_logit_scale`` (a clamp: no gradient to s while clamped). With a queue,
    the K past locations are encoded in the same ``encode_loc`` call as the batch and
    appended as extra columns of the image -> location logits (GeoCLIP); the current
    (gathered) batch is then enqueued, only when grad is enabled.

    Args:
        config: a :class:`ClipConfig`.
        loc_dim: d (unused).
        img_dim: D (unused).
    """

    logit_scale: Tensor

    def __init__(self, config: ClipConfig, *, loc_dim: int, img_dim: int) -> None:
        super().__init__()
        self.config = config
        init = torch.tensor(math.log(1.0 / config.init_temperature))
        if config.learn_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        self.queue = LocationQueue(config.queue_size) if config.queue_size > 0 else None

    def forward(
        self,
        batch: PretrainBatch,
        encode_loc: EncodeFn,
        encode_img: EncodeFn,
        dist: DistContext | None = None,
    ) -> LossOutput:
        """Compute the loss (arguments as :meth:`ContrastiveMC.forward`).

        Returns:
            total = mean of the terms ``loc_to_img`` and ``img_to_loc``.
        """
        dist = dist or LOCAL
        x, b = batch.lonlat, batch.lonlat.shape[0]
        past = self.queue(dist.gather(x)) if self.queue is not None else x[:0]
        out = encode_loc(torch.cat([x, past.to(x)], 0)) if past.shape[0] else encode_loc(x)
        u = F.normalize(out[:b], dim=-1)
        v = F.normalize(encode_img(batch.feats), dim=-1)
        scale = self.logit_scale.exp().clamp(max=self.config.max_logit_scale)
        cols = torch.cat([dist.gather(u), F.normalize(out[b:], dim=-1)], 0)
        terms = {
            "loc_to_img": inbatch_ce(u, dist.gather(v), scale, dist),
            "img_to_loc": inbatch_ce(v, cols, scale, dist),
        }
        return LossOutput(weighted_total(terms, {"loc_to_img": 0.5, "img_to_loc": 0.5}), terms)
