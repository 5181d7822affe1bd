"""Shared types, registries, factories and math of the objectives.

Notation (see ``geocsp`` docs): B batch rows on this process, M = world_size * B global
columns, d location-embedding dim, D image-feature dim, C random negative locations per
sample, Q classes.

Every objective returns a :class:`LossOutput`: ``total`` is what is back-propagated, and
``terms`` holds the **unweighted** value of each term that was computed (a term whose
weight is 0 is not computed and is absent), so ``total = sum_k weight_k * terms[k]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geocsp._registry import Registry
from geocsp.config import from_dict
from geocsp.errors import ConfigError

OBJECTIVES: Registry[Any] = Registry("objective")
FINETUNE_LOSSES: Registry[Any] = Registry("fine-tune loss")

EncodeFn = Callable[[Tensor], Tensor]


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
    return t


@dataclass(frozen=True)
class DistContext:
    """How in-batch terms see the other processes' rows.

    Args:
        gather: all-gather *with gradient*: (B, k) local tensor -> (world_size * B, k),
            ranks concatenated in order.
        rank: index of this process.
        world_size: number of processes.
    """

    gather: Callable[[Tensor], Tensor] = _identity
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"DistContext: need 0 <= rank < world_size, got rank={self.rank}, "
                f"world_size={self.world_size}"
            )


LOCAL = DistContext()


def check_positive(owner: str, **values: float) -> None:
    """Raise ConfigError unless every value is a finite number > 0.

    Raises:
        ConfigError: naming the first offending field.
    """
    for name, v in values.items():
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{owner}.{name} must be a finite number > 0, got {v!r}")


def check_nonnegative(owner: str, **values: float) -> None:
    """Raise ConfigError unless every value is a finite number >= 0.

    Raises:
        ConfigError: naming the first offending field.
    """
    for name, v in values.items():
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"{owner}.{name} must be a finite number >= 0, got {v!r}")


def check_negatives(owner: str, weight: float, num_negatives: int) -> None:
    """Validate C against the weight of the random-location term.

    Raises:
        ConfigError: if C < 0, or C == 0 while the term's weight is > 0.
    """
    if num_negatives < 0 or (weight > 0 and num_negatives < 1):
        raise ConfigError(
            f"{owner}.num_negatives must be >= 1 when neg_loc_weight > 0 (and never < 0), "
            f"got {num_negatives}"
        )


def encode_locations(
    batch: PretrainBatch, encode_loc: EncodeFn, *, second_pass: bool, negatives: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Run every location pass an objective needs as ONE call of ``encode_loc``.

    The input is ``[x; x (if second_pass); negatives (if negatives)]``; dropout masks are
    drawn per row, so this equals separate passes.

    Args:
        batch: the batch; ``neg_lonlat`` must be set when ``negatives`` is True.
        encode_loc: (M, 2) degrees -> (M, d) location encoder, dropout active.
        second_pass: also encode x a second time (SimCSE positives u').
        negatives: also encode the (B, C, 2) negative locations.

    Returns:
        e(x) (B, d), e'(x) (B, d) or None, e(negatives) (B, C, d) or None; unnormalised.

    Raises:
        ConfigError: if negatives are needed but ``batch.neg_lonlat`` is None or mis-shaped.
    """
    x = batch.lonlat
    b = x.shape[0]
    parts = [x, x] if second_pass else [x]
    if negatives:
        neg = batch.neg_lonlat
        if neg is None or neg.ndim != 3 or neg.shape[0] != b or neg.shape[2] != 2:
            got = None if neg is None else tuple(neg.shape)
            raise ConfigError(f"batch.neg_lonlat must have shape (B={b}, C, 2), got {got}")
        parts.append(neg.reshape(-1, 2))
    out = encode_loc(torch.cat(parts, 0) if len(parts) > 1 else x)
    emb = out[:b]
    emb2 = out[b : 2 * b] if second_pass else None
    start = 2 * b if second_pass else b
    neg_emb = out[start:].reshape(b, -1, out.shape[1]) if negatives else None
    return emb, emb2, neg_emb


EPS = 1e-5
"""The epsilon of the reference codes' ``-log(p + 1e-5)``."""


def neg_log(p: Tensor) -> Tensor:
    """The reference codes' clipped negative log: ``-log(p + 1e-5)``, elementwise."""
    return -torch.log(p + EPS)


def weighted_total(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """``sum_k weights[k] * terms[k]`` over the computed terms (weight 1 if not listed)."""
    return torch.stack([weights.get(k, 1.0) * t for k, t in terms.items()]).sum()


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
        """``LossOutput`` with total = Σ terms, L_L and L_D scaled by their weights."""
        weights = {"L_L": self.config.neg_loc_weight, "L_D": self.config.simcse_weight}
        return LossOutput(weighted_total(terms, weights), terms)


Ablation = tuple[str, tuple[str, ...], str, dict[str, Any]]
"""(registered name, aliases, one-line description, changed config defaults)."""


def register_ablations(objective: type, base: type, table: tuple[Ablation, ...]) -> None:
    """Register ``objective`` once per row of ``table``, each with its own config class.

    Each config is a frozen subclass of ``base`` that differs only in the defaults named
    by the row (the paper's Table 2 ablations), documented by the row's description.
    """
    for name, aliases, doc, defaults in table:
        fields = [(k, type(v), field(default=v)) for k, v in defaults.items()]
        cfg = make_dataclass(
            name.title().replace("-", "") + "Config",
            fields,
            bases=(base,),
            frozen=True,
            namespace={"__doc__": doc, "__module__": objective.__module__},
        )
        OBJECTIVES.register(name, aliases=aliases, config=cfg, description=doc)(objective)


def inbatch_targets(rows: Tensor, dist: DistContext) -> Tensor:
    """(B,) int64 column index of each local row's positive among the gathered columns."""
    b = rows.shape[0]
    return torch.arange(b, device=rows.device) + dist.rank * b


def inbatch_ce(rows: Tensor, cols: Tensor, scale: Tensor | float, dist: DistContext) -> Tensor:
    """Mean softmax cross-entropy of local rows against gathered columns (InfoNCE).

    Args:
        rows: (B, d) local row embeddings.
        cols: (M', d) columns: the gathered (M, d) positives-and-negatives, optionally
            followed by extra negative columns (e.g. a queue).
        scale: multiplier of the logits (1/τ, or a learnable logit scale).
        dist: row i's target is column ``rank * B + i``.

    Returns:
        Scalar mean over the B rows.
    """
    logits = (rows @ cols.T) * scale
    return F.cross_entropy(logits, inbatch_targets(rows, dist))


def build(registry: Registry[Any], name: str, overrides: dict[str, Any], **kwargs: Any) -> Any:
    """Build ``registry[name]`` from its config dataclass filled with ``overrides``.

    Raises:
        ConfigError: unknown name, unknown key or invalid value.
    """
    entry = registry.get(name)
    assert entry.config is not None
    cfg = from_dict(entry.config, overrides, where=entry.name)
    return entry.obj(cfg, **kwargs)


def list_objectives() -> list[str]:
    """Canonical names of the registered pre-training objectives."""
    return OBJECTIVES.names()


def get_objective_config(name: str) -> type:
    """The config dataclass of pre-training objective ``name`` (aliases accepted)."""
    cfg = OBJECTIVES.get(name).config
    assert cfg is not None
    return cfg


def create_objective(name: str, *, loc_dim: int, img_dim: int, **overrides: Any) -> Any:
    """Build pre-training objective ``name`` with config ``overrides``.

    Args:
        name: registered name or alias, e.g. ``"csp-mc-bld"`` / ``"contsoftmax"``.
        loc_dim: d, the location-embedding dimension.
        img_dim: D, the image-feature dimension.
        **overrides: config fields.

    Raises:
        ConfigError: unknown name, unknown key or invalid value.
    """
    return build(OBJECTIVES, name, overrides, loc_dim=loc_dim, img_dim=img_dim)


def list_finetune_losses() -> list[str]:
    """Canonical names of the registered fine-tuning losses."""
    return FINETUNE_LOSSES.names()


def create_finetune_loss(name: str, **overrides: Any) -> Any:
    """Build fine-tuning loss ``name`` (e.g. ``"full"``) with config ``overrides``.

    Raises:
        ConfigError: unknown name, unknown key or invalid value.
    """
    return build(FINETUNE_LOSSES, name, overrides)
