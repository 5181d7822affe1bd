"""Fitting the calibrated fusion ``log P(y|I) + β log(ε + (1 − ε) P(y|x))`` (docs/fusion.md).

Presence-only priors can be wildly over-confident, and the right β differs ~50× between
datasets, so β and ε are fitted on rows that are not reported: a calibration split, or the
out-of-fold scores of priors refitted on folds of the labelled subset
(:mod:`geocsp.training.crossfit`). :func:`fit_fusion` makes one pass over the rows for the
whole grid; :func:`fit_fusion_chunks` does the same over rows that arrive in chunks;
:class:`FittedFusion` records what was fitted where, for ``metrics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.metrics import MetricAccumulator
from geocsp.evaluation.tuning import grid_states
from geocsp.prior.fusion import Fusion

DEFAULT_FIT_BETAS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
"""The β values :func:`fit_fusion` tries by default."""
DEFAULT_FIT_EPSILONS = (0.0, 1e-3, 1e-2, 0.05, 0.2)
"""The ε values :func:`fit_fusion` tries by default."""
CRITERIA = ("top1", "nll")
"""Selection criteria of :func:`fit_fusion`."""
IMAGE_ONLY = (0.0, 0.0)
PAPER = (1.0, 0.0)


def hurts_warning(image_top1: float, paper_top1: float, n: int, fusion: Fusion, fitted_on: str) -> str | None:
    """The one warning line when the paper's fusion lowers top-1 on the fitting rows, else None.

    Args:
        image_top1: top-1 of the image alone on the fitting rows.
        paper_top1: top-1 of the paper's product (β = 1) on the same rows.
        n: number of fitting rows.
        fusion: the calibrated fusion used instead.
        fitted_on: what the rows are, e.g. ``calib`` or ``crossfit-train-k<K>``.

    Returns:
        ``warning: the paper's fusion (beta=1) lowers top-1 from ... ; fused_calibrated uses ...``.
    """
    if not paper_top1 < image_top1:
        return None
    return (f"warning: the paper's fusion (beta=1) lowers top-1 from {image_top1:.4f} (image only) to "
            f"{paper_top1:.4f} on {n} rows ({fitted_on}); fused_calibrated uses beta={fusion.beta:g}, "
            f"eps={fusion.eps:g} (docs/protocol.md)")


@dataclass(frozen=True)
class FitResult:
    """A fitted fusion and the grid it was chosen from (all numbers on the fitting rows).

    Attributes:
        fusion: the chosen fusion (``kind="calibrated"``; ε = 0 when β = 0).
        criterion: ``"top1"`` or ``"nll"``.
        n: number of fitting rows.
        table: ``(β, ε) -> {"top1", "mrr", "nll"}`` for every grid point.
        image_only_top1: top-1 of P(y|I) alone (β = 0).
        paper_top1: top-1 of the paper's product (β = 1, ε = 0).
        hurts: whether the paper's product is below the image alone (``paper_top1 <
            image_only_top1``).
    """

    fusion: Fusion
    criterion: str
    n: int
    table: dict[tuple[float, float], dict[str, float]]
    image_only_top1: float
    paper_top1: float
    hurts: bool

    def warning(self) -> str | None:
        """One line saying the paper's fusion hurts on the fitting rows, or None."""
        return hurts_warning(self.image_only_top1, self.paper_top1, self.n, self.fusion, "fitting rows")

    def to_dict(self, table: bool = True) -> dict[str, Any]:
        """The JSON form (for metrics.json); ``table`` is a list of rows when kept.

        Args:
            table: whether to include the grid table.

        Returns:
            ``{"fusion", "criterion", "n", "image_only_top1", "paper_top1", "hurts"[, "table"]}``.
        """
        out: dict[str, Any] = {
            "fusion": self.fusion.to_dict(),
            "criterion": self.criterion,
            "n": self.n,
            "image_only_top1": self.image_only_top1,
            "paper_top1": self.paper_top1,
            "hurts": self.hurts,
        }
        if table:
            out["table"] = [{"beta": b, "eps": e, **m} for (b, e), m in self.table.items()]
        return out


def fusion_grid(
    betas: Sequence[float] = DEFAULT_FIT_BETAS, epsilons: Sequence[float] = DEFAULT_FIT_EPSILONS
) -> list[tuple[float, float]]:
    """The ``(β, ε)`` points of a grid: β × ε, plus image-only (0, 0) and the paper (1, 0).

    β = 0 ignores ε, so it appears once, as (0, 0). Points are sorted by (β, ε).

    Args:
        betas: β values, finite and >= 0.
        epsilons: ε values in [0, 1].

    Returns:
        Sorted, distinct ``(β, ε)`` pairs.

    Raises:
        ConfigError: on an empty ``betas`` or ``epsilons`` (values are checked when scored).

    >>> fusion_grid((0.5,), (0.1,))
    [(0.0, 0.0), (0.5, 0.1), (1.0, 0.0)]
    """
    if len(betas) == 0 or len(epsilons) == 0:
        raise ConfigError("betas, epsilons: expected at least one value each")
    pts = {(float(b), float(e) if b != 0 else 0.0) for b in betas for e in epsilons}
    return sorted(pts | {IMAGE_ONLY, PAPER})


def _key(row: dict[str, float], point: tuple[float, float], criterion: str) -> tuple[float, ...]:
    """Sort key, larger is better: criterion, then MRR, then smaller β, then larger ε."""

    def num(x: float) -> float:
        return -math.inf if math.isnan(x) else x

    head = (num(row["top1"]),) if criterion == "top1" else (num(-row["nll"]), num(row["top1"]))
    return (*head, num(row["mrr"]), -point[0], point[1])


def _fit_from_states(
    states: Tensor, points: list[tuple[float, float]], criterion: str, ks: tuple[int, ...],
    n_bins: int,
) -> FitResult:
    """Choose a fusion from the (P, S) accumulator states of ``points``."""
    table: dict[tuple[float, float], dict[str, float]] = {}
    n = 0
    for pt, state in zip(points, states, strict=True):
        m = MetricAccumulator.from_state(state, ks, n_bins).compute()
        n = int(m["n"])
        table[pt] = {"top1": float(m["top1"]), "mrr": float(m["mrr"]), "nll": float(m["nll"])}
    if n == 0:
        raise DatasetError("labels: expected at least one row to fit the fusion on, got 0")
    beta, eps = max(points, key=lambda pt: _key(table[pt], pt, criterion))
    image, paper = table[IMAGE_ONLY]["top1"], table[PAPER]["top1"]
    return FitResult(
        fusion=Fusion("calibrated", beta, eps), criterion=criterion, n=n, table=table,
        image_only_top1=image, paper_top1=paper, hurts=paper < image,
    )


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion: expected one of {list(CRITERIA)}, got {criterion!r}")


def fit_fusion(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    *,
    betas: Sequence[float] = DEFAULT_FIT_BETAS,
    epsilons: Sequence[float] = DEFAULT_FIT_EPSILONS,
    criterion: str = "top1",
    batch_size: int = 4096,
    device: torch.device | str | None = None,
) -> FitResult:
    """Fit (β, ε) of the calibrated fusion on these rows (a calibration split), in one pass.

    Choice: the best ``criterion`` (top-1, or the lowest NLL then top-1), then the best MRR,
    then the smallest β (prefer the image when tied), then the largest ε (the weaker prior).
    The grid always holds β = 0 (image only), so on these rows the fitted fusion is never
    below the image alone, and the paper's (1, 0), whose top-1 sets ``hurts``.

    Args:
        img_probs: (N, Q) P(y|I) (tensor, NumPy array, memmap or SciPy sparse).
        loc_probs: (N, Q) P(y|x) (ignored, may be NaN, where ``has_location`` is False).
        labels: (N,) true class indices in [0, Q).
        has_location: (N,) bool.
        betas: β values to try (each finite, >= 0).
        epsilons: ε values to try (each in [0, 1]).
        criterion: ``"top1"`` or ``"nll"``.
        batch_size: rows per chunk.
        device: where to compute (default: CPU).

    Returns:
        The :class:`FitResult`.

    Raises:
        ConfigError: on an empty or invalid grid or an unknown criterion.
        DatasetError: on zero rows, mismatched shapes or out-of-range labels.

    >>> img = torch.tensor([[0.6, 0.4], [0.6, 0.4], [0.3, 0.7]])
    >>> loc = torch.tensor([[0.0, 0.9], [0.2, 0.8], [0.5, 0.5]])
    >>> fit = fit_fusion(img, loc, torch.tensor([1, 1, 1]), torch.ones(3, dtype=torch.bool))
    >>> fit.fusion, fit.image_only_top1, fit.paper_top1, fit.hurts
    (Fusion(kind='calibrated', beta=0.3, eps=0.001), 0.3333333333333333, 1.0, False)

    Here top-1 first reaches 1 at β = 0.3, for ε in {0, 0.001}: the larger ε wins the tie.
    """
    return fit_fusion_chunks([(img_probs, loc_probs, labels, has_location)], betas=betas, epsilons=epsilons,
                             criterion=criterion, batch_size=batch_size, device=device)


def fit_fusion_chunks(
    chunks: Iterable[tuple[Any, Any, Any, Any]],
    *,
    betas: Sequence[float] = DEFAULT_FIT_BETAS,
    epsilons: Sequence[float] = DEFAULT_FIT_EPSILONS,
    criterion: str = "top1",
    batch_size: int = 4096,
    device: torch.device | str | None = None,
) -> FitResult:
    """:func:`fit_fusion` over rows given in chunks (exactly the fit of their concatenation).

    Metric states are sums over rows, so each chunk adds its grid states and the choice is
    made once at the end: only one chunk's (rows, Q) arrays are in memory at a time.

    Args:
        chunks: ``(img_probs, loc_probs, labels, has_location)`` tuples, shaped as in
            :func:`fit_fusion` (each (n_i, Q), (n_i, Q), (n_i,), (n_i,)).
        betas: β values to try.
        epsilons: ε values to try.
        criterion: ``"top1"`` or ``"nll"``.
        batch_size: rows per chunk inside each tuple.
        device: where to compute (default: CPU).

    Returns:
        The :class:`FitResult` of all rows.

    Raises:
        ConfigError: on an empty or invalid grid or an unknown criterion.
        DatasetError: on zero rows in all, mismatched shapes or out-of-range labels.
    """
    _check_criterion(criterion)
    points = fusion_grid(betas, epsilons)
    total: Tensor | None = None
    for img, loc, labels, has in chunks:
        states = grid_states(img, loc, labels, has, points, batch_size=batch_size, device=device)[0]
        total = states if total is None else total + states
    if total is None:
        raise DatasetError("labels: expected at least one row to fit the fusion on, got 0")
    return _fit_from_states(total, points, criterion, (1,), 1)


@dataclass(frozen=True)
class FittedFusion:
    """A calibrated fusion fitted on rows that are never reported, and where they came from.

    Attributes:
        fusion: the fitted fusion (``kind="calibrated"``).
        fitted_on: ``calib`` (a calibration split) or ``crossfit-train-k<K>`` (out-of-fold
            priors on the labelled train subset, :mod:`geocsp.training.crossfit`).
        n: number of fitting rows.
        image_only_top1: top-1 of P(y|I) alone on the fitting rows.
        paper_top1: top-1 of the paper's product (β = 1) on the fitting rows.
        details: extra JSON-ready facts stored under ``fitted_on``'s kind in the metrics
            (cross-fitting: ``{"crossfit": {"k", "seed", "fold_rows", "probs_key"}}``).
        criterion: what chose (β, ε): ``top1`` or ``nll``.
    """

    fusion: Fusion
    fitted_on: str
    n: int
    image_only_top1: float
    paper_top1: float
    details: dict[str, Any] = field(default_factory=dict)
    criterion: str = "top1"

    @classmethod
    def from_fit(cls, fit: FitResult, fitted_on: str, **details: Any) -> FittedFusion:
        """The record of a :class:`FitResult` fitted on ``fitted_on`` rows.

        Args:
            fit: the fit.
            fitted_on: ``calib`` or ``crossfit-train-k<K>``.
            **details: extra JSON-ready entries of :meth:`info`.

        Returns:
            The :class:`FittedFusion`.
        """
        return cls(fit.fusion, fitted_on, fit.n, fit.image_only_top1, fit.paper_top1, dict(details), fit.criterion)

    @property
    def hurts(self) -> bool:
        """Whether the paper's product is below the image alone on the fitting rows."""
        return self.paper_top1 < self.image_only_top1

    def info(self, paper_beta: float) -> dict[str, Any]:
        """The ``fusion`` entry of ``metrics.json`` (schema: docs/fusion.md).

        Args:
            paper_beta: the β of the paper's product reported as ``fused``.

        Returns:
            ``{"paper": {"beta"}, "calibrated": {"kind", "beta", "eps"}, "fitted_on", "criterion",
            "calib_rows", "image_only_top1_calib", "paper_top1_calib", "hurts", "warning",
            "why": None, **details}``.
        """
        return {"paper": {"beta": float(paper_beta)}, "calibrated": self.fusion.to_dict(),
                "fitted_on": self.fitted_on, "criterion": self.criterion, "calib_rows": int(self.n),
                "image_only_top1_calib": float(self.image_only_top1), "paper_top1_calib": float(self.paper_top1),
                "hurts": self.hurts, "why": None,
                "warning": hurts_warning(self.image_only_top1, self.paper_top1, self.n, self.fusion, self.fitted_on),
                **self.details}


def uncalibrated_info(paper_beta: float, why: str) -> dict[str, Any]:
    """The ``fusion`` entry of ``metrics.json`` when no calibrated fusion could be fitted.

    Same keys as :meth:`FittedFusion.info`, with ``calibrated``, ``fitted_on`` and ``criterion`` None and
    ``why`` the one-line reason (``fused_calibrated`` is then None too).

    Args:
        paper_beta: the β of the paper's product reported as ``fused``.
        why: one line saying what is missing, e.g. ``needs a calib split or image
            probabilities for the train split``.

    Returns:
        The entry.
    """
    return {"paper": {"beta": float(paper_beta)}, "calibrated": None, "fitted_on": None, "criterion": None,
            "calib_rows": 0,
            "image_only_top1_calib": None, "paper_top1_calib": None, "hurts": None, "why": why,
            "warning": None}


def stratified_folds(labels: Any, k: int, seed: int = 0) -> np.ndarray:
    """Fold of each row: stratified by class, seeded, sizes differing by at most 1.

    Rows are ordered by (class, a seeded random key) and dealt round-robin into k folds, so
    every class is spread over the folds as evenly as its size allows (a class with fewer
    than k rows misses some folds) and the fold sizes differ by at most 1.

    Args:
        labels: (n,) int class of each row.
        k: number of folds, 2 <= k <= n.
        seed: seed of the order within each class.

    Returns:
        (n,) int64 folds in [0, k).

    Raises:
        ConfigError: unless 2 <= k <= n.

    >>> stratified_folds(np.array([0, 0, 0, 1, 1, 1]), 3).tolist().count(0)
    2
    """
    lab = np.asarray(labels, dtype=np.int64)
    if not (2 <= k <= len(lab)):
        raise ConfigError(f"k: expected 2 <= k <= {len(lab)} (the number of rows), got {k}")
    order = np.lexsort((np.random.default_rng(seed).random(len(lab)), lab))
    out = np.empty(len(lab), np.int64)
    out[order] = np.arange(len(lab)) % k
    return out


