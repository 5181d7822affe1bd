"""Fusing image-classifier probabilities with the location prior (spec §6).

score_y = P(y|I) · P(y|x)^β, with β = 1 in the paper (Mai et al. 2023, arXiv:2305.01118,
following Mac Aodha et al. 2019). Rows without a location use P(y|I) alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geocsp.errors import ConfigError


def check_beta(beta: float) -> None:
    """Check a fusion exponent.

    Args:
        beta: exponent of the location prior.

    Raises:
        ConfigError: unless ``beta`` is finite and >= 0.
    """
    if not (math.isfinite(beta) and beta >= 0):
        raise ConfigError(f"beta: expected a finite value >= 0, got {beta}")


def fused_log_scores(
    img_probs: Tensor, loc_probs: Tensor, has_location: Tensor, beta: float = 1.0
) -> Tensor:
    """Log of the fused score, ``log P(y|I) + β log P(y|x)``, computed in float64.

    ``β log P(y|x)`` is taken as 0 when β = 0 (even where P(y|x) = 0), and rows without a
    location get ``log P(y|I)``; zeros give ``-inf``.

    Args:
        img_probs: (N, Q) image probabilities P(y|I).
        loc_probs: (N, Q) location-prior probabilities P(y|x); rows with
            ``has_location`` False are ignored (may be NaN).
        has_location: (N,) bool.
        beta: exponent of the location prior, >= 0.

    Returns:
        (N, Q) float64 log-scores.

    Raises:
        ConfigError: on a negative or non-finite ``beta``.

    >>> img = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    >>> loc = torch.tensor([[0.1, 0.4], [float("nan"), 0.0]])
    >>> fused_log_scores(img, loc, torch.tensor([True, False]), beta=2.0).exp().round(decimals=6).tolist()
    [[0.005, 0.08], [0.2, 0.8]]
    """
    check_beta(beta)
    img = img_probs.double()
    has = has_location.to(device=img.device, dtype=torch.bool)[:, None]
    loc = torch.where(has, loc_probs.to(img.device).double(), torch.ones_like(img))
    return torch.log(img) + torch.xlogy(
        torch.tensor(float(beta), dtype=img.dtype, device=img.device), loc
    )


def fused_product64(img_probs: Tensor, loc_probs: Tensor, has_location: Tensor) -> Tensor:
    """The β = 1 fused score ``P(y|I) · P(y|x)`` in float64, with few (N, Q) passes.

    A product of two float32 numbers is exact in float64 (48 < 53 mantissa bits) and at
    least ~1e-90, far above float64 underflow, so its ranks and row-normalised values are
    those of the log-space score without computing any logarithm. Rows without a location
    get P(y|I).

    Args:
        img_probs: (N, Q) image probabilities (float32 or float64 for exactness).
        loc_probs: (N, Q) location probabilities (ignored where ``has_location`` is False).
        has_location: (N,) bool.

    Returns:
        (N, Q) float64 fused scores.
    """
    has = has_location.to(device=img_probs.device, dtype=torch.bool)
    loc = loc_probs.to(device=img_probs.device, dtype=torch.float64, copy=True)  # never in place
    if not bool(has.all()):
        loc[~has] = 1.0
    return loc.mul_(img_probs)


def fuse(img_probs: Tensor, loc_probs: Tensor, has_location: Tensor, beta: float = 1.0) -> Tensor:
    """Fused class scores ``P(y|I) · P(y|x)^β`` (unnormalised).

    For β = 1 this is the plain product; otherwise it is evaluated as
    ``exp(log P(y|I) + β log P(y|x))``. Rows without a location return P(y|I).

    Args:
        img_probs: (N, Q) image probabilities P(y|I).
        loc_probs: (N, Q) location-prior probabilities P(y|x) (ignored where
            ``has_location`` is False).
        has_location: (N,) bool.
        beta: exponent of the location prior, >= 0.

    Returns:
        (N, Q) fused scores in the dtype of ``img_probs``.

    Raises:
        ConfigError: on a negative or non-finite ``beta``.

    >>> img = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    >>> loc = torch.tensor([[0.1, 0.4], [0.9, 0.9]])
    >>> fuse(img, loc, torch.tensor([True, False])).tolist()
    [[0.05000000074505806, 0.20000000298023224], [0.20000000298023224, 0.800000011920929]]
    >>> fuse(img, loc, torch.tensor([True, True]), beta=0.0).tolist() == img.tolist()
    True
    """
    check_beta(beta)
    has = has_location.to(device=img_probs.device, dtype=torch.bool)[:, None]
    if beta == 1.0:
        return torch.where(has, img_probs * loc_probs.to(img_probs.device), img_probs)
    return fused_log_scores(img_probs, loc_probs, has_location, beta).exp().to(img_probs.dtype)
