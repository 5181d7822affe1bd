"""Fusing image-classifier probabilities with the location prior (spec §6).

score_y = P(y|I) · P(y|x)^β, with β = 1 in the paper (Mai et al. 2023, arXiv:2305.01118,
following Mac Aodha et al. 2019). Rows without a location use P(y|I) alone.

The calibrated family (:class:`Fusion`, :func:`calibrated_log_scores`) generalises it to
``log P(y|I) + β · log(ε + (1 − ε) · P(y|x))``; β and ε are fitted on data that is not
reported (:mod:`geocsp.evaluation.calibration`, docs/fusion.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


FUSION_KINDS = ("paper", "calibrated")
"""``paper``: the product ``P(y|I) · P(y|x)^β`` (ε = 0); ``calibrated``: fitted β and ε."""


@dataclass(frozen=True)
class Fusion:
    """One member of the calibrated fusion family (see :func:`calibrated_log_scores`).

    ``score(y) = log P(y|I) + β · log(ε + (1 − ε) · P(y|x))``. β = 0 is the image alone;
    ε = 0, β = 1 is the paper's product. ε mixes the prior with a flat floor, so one
    confident zero of an over-confident prior can no longer veto a class.

    Args:
        kind: ``"paper"`` (the paper's product: ε must be 0; β = 1 in the paper) or
            ``"calibrated"`` (β and ε fitted on data that is not reported).
        beta: exponent of the prior, finite and >= 0.
        eps: floor mixed into the prior, in [0, 1].

    Raises:
        ConfigError: on an unknown kind, a negative or non-finite β, an ε outside [0, 1],
            or a ``paper`` fusion with ε != 0.

    >>> Fusion("calibrated", beta=0.02, eps=0.01).to_dict()
    {'kind': 'calibrated', 'beta': 0.02, 'eps': 0.01}
    >>> Fusion.from_dict({"kind": "paper", "beta": 1, "eps": 0})
    Fusion(kind='paper', beta=1.0, eps=0.0)
    """

    kind: str = "paper"
    beta: float = 1.0
    eps: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FUSION_KINDS:
            raise ConfigError(
                f"fusion.kind: expected one of {list(FUSION_KINDS)}, got {self.kind!r}"
            )
        check_beta(self.beta)
        check_eps(self.eps)
        if self.kind == "paper" and self.eps != 0.0:
            raise ConfigError(f"fusion.eps: expected 0 for kind 'paper', got {self.eps}")
        object.__setattr__(self, "beta", float(self.beta))
        object.__setattr__(self, "eps", float(self.eps))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, ``{"kind": ..., "beta": ..., "eps": ...}`` (e.g. for metrics.json).

        Returns:
            A plain dict that :meth:`from_dict` reads back.
        """
        return {"kind": self.kind, "beta": self.beta, "eps": self.eps}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "fusion") -> Fusion:
        """Read the form written by :meth:`to_dict`.

        Args:
            data: mapping with ``kind`` and optional ``beta`` (default 1) and ``eps`` (default 0).
            where: name of the mapping in error messages (a file or config key).

        Returns:
            The validated fusion.

        Raises:
            ConfigError: on a missing kind, unknown keys, non-numbers or invalid values.
        """
        if not isinstance(data, Mapping) or "kind" not in data:
            raise ConfigError(
                f"{where}: expected a mapping with 'kind', 'beta' and 'eps', got {data!r}"
            )
        extra = sorted(set(data) - {"kind", "beta", "eps"})
        if extra:
            raise ConfigError(f"{where}: unknown keys {extra}; expected 'kind', 'beta' and 'eps'")
        values = {"beta": data.get("beta", 1.0), "eps": data.get("eps", 0.0)}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
        return cls(str(data["kind"]), float(values["beta"]), float(values["eps"]))

    def log_scores(self, img_probs: Tensor, loc_probs: Tensor, has_location: Tensor) -> Tensor:
        """This fusion's (N, Q) float64 log-scores; see :func:`calibrated_log_scores`."""
        return calibrated_log_scores(img_probs, loc_probs, has_location, self.beta, self.eps)


def check_eps(eps: float) -> None:
    """Check a prior floor ε.

    Args:
        eps: the floor mixed into the prior.

    Raises:
        ConfigError: unless ``0 <= eps <= 1``.
    """
    if not (math.isfinite(eps) and 0.0 <= eps <= 1.0):
        raise ConfigError(f"eps: expected a value in [0, 1], got {eps}")


def prior_log_term(loc_probs: Tensor, has_location: Tensor, eps: float) -> Tensor:
    """``log(ε + (1 − ε) · P(y|x))`` in float64; 0 in rows without a location.

    Computed once per ε and shared by every β (see :func:`combine_log_scores`).

    Args:
        loc_probs: (N, Q) P(y|x) (ignored, may be NaN, where ``has_location`` is False).
        has_location: (N,) bool.
        eps: floor in [0, 1].

    Returns:
        (N, Q) float64 log prior term, ``-inf`` where ε = 0 and P(y|x) = 0.

    Raises:
        ConfigError: on an ε outside [0, 1].
    """
    check_eps(eps)
    has = has_location.to(device=loc_probs.device, dtype=torch.bool)[:, None]
    loc = torch.where(has, loc_probs.double(), 1.0)
    mixed = loc if eps == 0.0 else loc.mul(1.0 - eps).add_(eps)
    return torch.where(has, mixed.log_(), 0.0)


def combine_log_scores(log_img: Tensor, log_prior: Tensor, beta: float) -> Tensor:
    """``log P(y|I) + β · log prior``, with the prior term taken as 0 when β = 0.

    Args:
        log_img: (N, Q) float64 log P(y|I).
        log_prior: (N, Q) float64 term from :func:`prior_log_term`.
        beta: exponent, finite and >= 0.

    Returns:
        (N, Q) float64 log-scores (a new tensor).

    Raises:
        ConfigError: on a negative or non-finite ``beta``.
    """
    check_beta(beta)
    if beta == 0.0:  # never 0 · (-inf) = NaN
        return log_img.clone()
    return torch.add(log_img, log_prior, alpha=beta)


def calibrated_log_scores(
    img_probs: Tensor, loc_probs: Tensor, has_location: Tensor, beta: float, eps: float
) -> Tensor:
    """Calibrated fusion, ``log P(y|I) + β · log(ε + (1 − ε) · P(y|x))``, in float64.

    ε = 0 gives exactly :func:`fused_log_scores`; β = 0 gives ``log P(y|I)``. Rows without a
    location get ``log P(y|I)``. Works on any row chunk (rows are independent).

    Args:
        img_probs: (N, Q) image probabilities P(y|I).
        loc_probs: (N, Q) prior probabilities P(y|x) (ignored where ``has_location`` is False).
        has_location: (N,) bool.
        beta: exponent of the prior, finite and >= 0.
        eps: floor mixed into the prior, in [0, 1].

    Returns:
        (N, Q) float64 log-scores.

    Raises:
        ConfigError: on an invalid ``beta`` or ``eps``.

    >>> img = torch.tensor([[0.5, 0.5], [0.2, 0.8]], dtype=torch.float64)
    >>> loc = torch.tensor([[0.0, 0.4], [float("nan"), 0.0]], dtype=torch.float64)
    >>> has = torch.tensor([True, False])
    >>> calibrated_log_scores(img, loc, has, beta=1.0, eps=0.5).exp().round(decimals=12).tolist()
    [[0.25, 0.35], [0.2, 0.8]]
    >>> calibrated_log_scores(img, loc, has, beta=2.0, eps=0.0).exp().round(decimals=12).tolist()
    [[0.0, 0.08], [0.2, 0.8]]
    >>> calibrated_log_scores(img, loc, has, beta=0.0, eps=0.0).exp().round(decimals=12).tolist()
    [[0.5, 0.5], [0.2, 0.8]]
    """
    check_beta(beta)
    if eps == 0.0:
        return fused_log_scores(img_probs, loc_probs, has_location, beta)
    log_img = img_probs.double().log()
    log_prior = prior_log_term(loc_probs.to(log_img.device), has_location, eps)
    return combine_log_scores(log_img, log_prior, beta)
