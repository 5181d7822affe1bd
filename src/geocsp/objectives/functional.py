"""Pure pieces of the objectives: config checks, the shared location pass, loss math.

Nothing here holds state; the family modules (``contrastive``, ``nce``, ``regression``,
``presence``) compose these functions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from geocsp.errors import ConfigError
from geocsp.objectives.types import DistContext, EncodeFn, PretrainBatch

EPS = 1e-5
"""The epsilon of the reference codes' ``-log(p + 1e-5)``."""


def check_positive(owner: str, **values: float) -> None:
    """Raise ConfigError unless every value is a finite number > 0.

    Args:
        owner: config class name used in the message.
        **values: field name -> value.

    Raises:
        ConfigError: naming the first offending field.
    """
    for name, v in values.items():
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{owner}.{name} must be a finite number > 0, got {v!r}")


def check_nonnegative(owner: str, **values: float) -> None:
    """Raise ConfigError unless every value is a finite number >= 0.

    Args:
        owner: config class name used in the message.
        **values: field name -> value.

    Raises:
        ConfigError: naming the first offending field.
    """
    for name, v in values.items():
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"{owner}.{name} must be a finite number >= 0, got {v!r}")


def check_negatives(owner: str, weight: float, num_negatives: int) -> None:
    """Validate C against the weight of the random-location term.

    Args:
        owner: config class name used in the message.
        weight: weight of the random-location term (α1 / β1).
        num_negatives: C, random negative locations per sample.

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


def neg_log(p: Tensor) -> Tensor:
    """The reference codes' clipped negative log: ``-log(p + 1e-5)``, elementwise.

    Args:
        p: probabilities, any shape.

    Returns:
        Tensor of p's shape.
    """
    return -torch.log(p + EPS)


def weighted_total(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """``sum_k weights[k] * terms[k]`` over the computed terms (weight 1 if not listed).

    Args:
        terms: name -> scalar tensor.
        weights: name -> weight; missing names weigh 1.

    Returns:
        Scalar tensor.
    """
    return torch.stack([weights.get(k, 1.0) * t for k, t in terms.items()]).sum()


def inbatch_targets(rows: Tensor, dist: DistContext) -> Tensor:
    """(B,) int64 column index of each local row's positive among the gathered columns.

    Args:
        rows: (B, d) local rows (only B and the device are used).
        dist: row i's positive is column ``rank * B + i``.

    Returns:
        (B,) int64 tensor on ``rows.device``.
    """
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
