"""Fitting the calibrated fusion ``log P(y|I) + β log(ε + (1 − ε) P(y|x))`` (docs/fusion.md).

Presence-only priors can be wildly over-confident, and the right β differs ~50× between
datasets, so β and ε are fitted on rows that are not reported: :func:`fit_fusion` on a
calibration split, or :func:`crossfit_fusion` when there is none (every row is scored with
parameters fitted on the other folds). Both make one pass over the rows for the whole grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.functional import DEFAULT_KS
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
        fitted_on: what the rows are, e.g. ``calib`` or ``crossfit-<split>-k<K>``.

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


@dataclass(frozen=True)
class CrossFit:
    """Cross-fitted fusion: held-out metrics of every row and each fold's parameters.

    Attributes:
        metrics: metric dict (``top1 … n``, as in ``evaluate_scores``) of all rows, each row
            scored with the fusion fitted on the other folds.
        folds: the k per-fold fits (fold f fitted on every row outside fold f).
        fold_of_row: (N,) int64 fold of each row.
        image_only_top1: top-1 of P(y|I) over all rows.
        paper_top1: top-1 of the paper's product over all rows.
    """

    metrics: dict[str, float | int]
    folds: tuple[FitResult, ...]
    fold_of_row: np.ndarray
    image_only_top1: float
    paper_top1: float

    @property
    def hurts(self) -> bool:
        """Whether the paper's product is below the image alone over all rows."""
        return self.paper_top1 < self.image_only_top1

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: metrics, k, image/paper top-1 and each fold's fit (without tables).

        Returns:
            A plain dict.
        """
        return {
            "metrics": dict(self.metrics),
            "k": len(self.folds),
            "image_only_top1": self.image_only_top1,
            "paper_top1": self.paper_top1,
            "hurts": self.hurts,
            "folds": [fit.to_dict(table=False) for fit in self.folds],
        }


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
    _check_criterion(criterion)
    points = fusion_grid(betas, epsilons)
    states = grid_states(img_probs, loc_probs, labels, has_location, points,
                         batch_size=batch_size, device=device)[0]
    return _fit_from_states(states, points, criterion, (1,), 1)


def fold_assignment(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Fold of each of ``n`` rows: a seeded permutation dealt into k folds (sizes differ by <= 1).

    Args:
        n: number of rows.
        k: number of folds, 2 <= k <= n.
        seed: seed of the permutation.

    Returns:
        (n,) int64 folds in [0, k).

    Raises:
        ConfigError: unless 2 <= k <= n.

    >>> np.bincount(fold_assignment(10, 3)).tolist()
    [4, 3, 3]
    """
    if not (2 <= k <= n):
        raise ConfigError(f"k: expected 2 <= k <= {n} (the number of rows), got {k}")
    out = np.empty(n, np.int64)
    out[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return out


def crossfit_fusion(
    img_probs: Any,
    loc_probs: Any,
    labels: Any,
    has_location: Any,
    *,
    k: int = 5,
    seed: int = 0,
    betas: Sequence[float] = DEFAULT_FIT_BETAS,
    epsilons: Sequence[float] = DEFAULT_FIT_EPSILONS,
    criterion: str = "top1",
    batch_size: int = 4096,
    device: torch.device | str | None = None,
    n_bins: int = 15,
) -> CrossFit:
    """k-fold cross-fitted calibrated fusion: every row is scored with parameters it never shaped.

    For a dataset without a calibration split. Rows are dealt into k folds
    (:func:`fold_assignment`); fold f's (β, ε) is chosen as :func:`fit_fusion` would on the
    rows of the other folds, and fold f's rows are scored with it. One pass over the rows
    accumulates every (fold, grid point) state; a fold's fitting table is the sum of the
    other folds' states and the held-out metrics the sum over folds of each fold's state at
    its own chosen point, so the metrics are exact.

    Args:
        img_probs: (N, Q) P(y|I).
        loc_probs: (N, Q) P(y|x) (ignored where ``has_location`` is False).
        labels: (N,) true class indices in [0, Q).
        has_location: (N,) bool.
        k: number of folds, 2 <= k <= N.
        seed: seed of the fold permutation.
        betas: β values to try.
        epsilons: ε values to try.
        criterion: ``"top1"`` or ``"nll"``.
        batch_size: rows per chunk.
        device: where to compute (default: CPU).
        n_bins: ECE bins of the held-out metrics.

    Returns:
        The :class:`CrossFit`.

    Raises:
        ConfigError: on a bad k, grid or criterion.
        DatasetError: on mismatched shapes or out-of-range labels.
    """
    _check_criterion(criterion)
    points = fusion_grid(betas, epsilons)
    folds = fold_assignment(int(img_probs.shape[0]), k, seed)
    states = grid_states(img_probs, loc_probs, labels, has_location, points, groups=folds,
                         n_groups=k, ks=DEFAULT_KS, n_bins=n_bins, batch_size=batch_size,
                         device=device)
    fits, held_out = [], torch.zeros_like(states[0, 0])
    for f in range(k):
        rest = sum((states[g] for g in range(k) if g != f), torch.zeros_like(states[0]))
        fit = _fit_from_states(rest, points, criterion, DEFAULT_KS, n_bins)
        fits.append(fit)
        chosen = (fit.fusion.beta, fit.fusion.eps)
        held_out = held_out + states[f, points.index(chosen)]
    total = states.sum(dim=0)

    def top1(pt: tuple[float, float]) -> float:
        return float(MetricAccumulator.from_state(total[points.index(pt)], DEFAULT_KS, n_bins)
                     .compute()["top1"])

    return CrossFit(
        metrics=MetricAccumulator.from_state(held_out, DEFAULT_KS, n_bins).compute(),
        folds=tuple(fits), fold_of_row=folds,
        image_only_top1=top1(IMAGE_ONLY), paper_top1=top1(PAPER),
    )
