"""A class-conditional kernel density prior, and shrinkage of a network prior toward it.

A network prior fitted on a handful of presences per class is overconfident where it has
seen nothing (issue 15) and cannot say "I know little about this class". :class:`ClassKDE`
is the classic nonparametric answer, with pooling across classes built in. For each class y,

    r_y(x) = (S_y(x) + α G(x)) / ((n_y + α) G(x)),
    S_y(x) = Σ_{i: y_i = y} k_h(x, x_i),      G(x) = mean_{j in pool} k_h(x, x_j),
    k_h(x, x') = exp(-d(x, x')² / (2 h²))       (d great-circle distance, h bandwidth, km)

``S_y / n_y`` and ``G`` are kernel density estimates (same kernel, so its normalising
constant cancels) of the class's labelled locations and of the *pool*: every location known
at training time whose label is not used (the labelled subset, the other train rows and the
``unlabeled`` pairs; never ``calib`` or ``val``). ``r_y`` estimates p(x|y) / p(x) = P(y|x) / P(y),
the factor Bayes' rule multiplies an image classifier's P(y|I) by, **shrunk toward 1** (no
information) by α pseudo-observations spread like the pool: a class with one record stays
close to "wherever observations are", one with hundreds follows its own records (hierarchical
pooling of the class densities toward the population density). Its logit is
``z_y = log r_y`` and, alone, the prior is ``P(y|x) = sigmoid(z_y)`` (a class without a
labelled row: 0.5 everywhere, neutral).

**Shrinkage of a network prior toward it** (``kde.shrink = k``): the network's logit f_y(x)
and z_y(x) are pooled log-linearly with a weight that grows with the class's records,

    logit_y(x) = w_y f_y(x) + (1 - w_y) z_y(x),    w_y = n_y / (n_y + k),

``k = inf`` the KDE alone, ``k = 0`` the network alone (as the SDMs' ``--shrink-to-kde``).

**Pseudo-labelled locations** (``kde.soft = γ``, issue 16 item 2 without a network): the
unlabeled pairs and the train rows outside the labelled subset enter S_y and n_y with weight
γ · P(y|I) for every class whose image probability (the few-shot classifier of the run's
ratio) is at least ``soft_min``: a class with one labelled record gains every location where
the image classifier recognises it. γ = 0 is the labelled records alone.

**The class prior** (``kde.class_prior = c``): r_y is P(y|x) / P(y), the right factor for an
image classifier whose P(y|I) already carries the training prior P(y) (one trained on the same
class distribution). A class-balanced classifier does not, and the product then loses P(y)
(measured on real locations: docs/results.md). ``z_y + c · log(Q p̂_y)``, p̂_y = (n_y + 1) /
(Σ n + Q) from the labelled counts, puts it back: c = 1 makes the prior estimate P(y|x), c = 0
(default) is r_y; ``cv`` chooses c from :data:`CLASS_PRIORS` by the **row-mean** (not
class-balanced) log-likelihood of the fused P(y|I) · sigmoid(z_y) on ``calib``, after h, α, γ
(without calib, c = 0). The term is 0 for every class when the classes are balanced.

**Choices** (``cv``): the bandwidth h (:data:`BANDWIDTHS_KM`) and α (:data:`ALPHAS`) maximise
the class-balanced mean log-likelihood of the true class under the prior normalised over
classes, ``log sigmoid(z_y) - log Σ_c sigmoid(z_c)``, on the ``calib`` split when the dataset has
one, else leave-one-out on the labelled subset (each row removed from its class and the pool;
rows of classes with one labelled row cannot be scored). γ (:data:`SOFT_WEIGHTS`, each with
its best h and α) maximises the same score of the *fused* P(y|I) · sigmoid(z_y) on ``calib``
(γ brings the image classifier's beliefs into the prior, so only a fused score can tell
whether they help); without calib, ``soft: cv`` is γ = 0. k (:data:`SHRINKS`) is chosen on
``calib`` only, by the same score of the pooled logits (the network's logits on its own
training rows are in-sample). Nothing to score: h = the grid value nearest the median distance
from a labelled location to its nearest other labelled location, α = 1 (recorded as
``default``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from geocsp.coords import EARTH_RADIUS_KM, lonlat_to_xyz
from geocsp.errors import ConfigError

BANDWIDTHS_KM = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
"""Candidate kernel bandwidths h (km) when ``bandwidth_km: cv``."""
ALPHAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Candidate pseudo-counts α of the shrinkage toward the pool density when ``alpha: cv``."""
SHRINKS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, math.inf)
"""Candidate k of the network weight n / (n + k) when ``shrink: cv``."""
SOFT_WEIGHTS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Candidate weights γ of the pseudo-labelled locations when ``soft: cv``."""
CLASS_PRIORS = (0.0, 0.5, 1.0)
"""Candidate weights c of the class-prior term when ``class_prior: cv``."""
CHUNK = 512
"""Query rows per kernel block ((CHUNK, M) float64 distances)."""


def _number_or(value: Any, words: tuple[str, ...], name: str, *, inf_ok: bool = False) -> float | str:
    """``value`` if it is one of ``words``, else a float > 0 (``inf`` only when allowed)."""
    if isinstance(value, str) and value in words:
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not (v > 0 or (v == 0 and name in ("shrink", "soft"))) or (math.isinf(v) and not inf_ok):
        low = ">= 0" if name in ("shrink", "soft") else "> 0"
        allowed = " or ".join([*(repr(w) for w in words), f"a number {low}" + (" (inf allowed)" if inf_ok else "")])
        raise ConfigError(f"kde.{name} must be {allowed}, got {value!r}")
    return v


@dataclass(frozen=True)
class KDEConfig:
    """The class-KDE prior of a fine-tuned run (module docs; off by default).

    Args:
        shrink: None (default, off); ``inf``: the KDE alone (the network is not used; with
            ``data.epochs: 0`` nothing is trained); a number k >= 0: the network's weight
            n_y / (n_y + k); ``cv``: k chosen on ``calib`` (which must exist).
        bandwidth_km: ``cv`` (default) or a bandwidth in km > 0.
        alpha: ``cv`` (default) or the pseudo-count α > 0 of the shrinkage toward the pool.
        pool_max: at most this many pool locations (all labelled rows plus a seeded sample).
        pool: ``all`` (default): the labelled subset, the other ``train`` rows and the
            ``unlabeled`` pairs; ``labelled``: the labelled subset only (an ablation: what the
            unlabeled locations add).
        soft: weight γ >= 0 of the pseudo-labelled locations (0, default: none), or ``cv``.
            They need the image probabilities of the run's ratio on ``unlabeled`` / ``train``.
        soft_min: the smallest P(y|I) that makes a pseudo-label, in (0, 1].
        class_prior: weight c in [0, 1] of the class-prior term c · log(Q p̂_y) added to z_y
            (0, default: none; 1: the prior estimates P(y|x) itself), or ``cv`` (chosen on calib).
    """

    shrink: float | str | None = None
    bandwidth_km: float | str = "cv"
    alpha: float | str = "cv"
    pool_max: int = 10_000
    pool: Literal["all", "labelled"] = "all"
    soft: float | str = 0.0
    soft_min: float = 0.5
    class_prior: float | str = 0.0

    def __post_init__(self) -> None:
        if self.shrink is not None:
            _number_or(self.shrink, ("cv",), "shrink", inf_ok=True)
        _number_or(self.bandwidth_km, ("cv",), "bandwidth_km")
        _number_or(self.alpha, ("cv",), "alpha")
        if not isinstance(self.pool_max, int) or isinstance(self.pool_max, bool) or self.pool_max < 1:
            raise ConfigError(f"kde.pool_max must be an integer >= 1, got {self.pool_max!r}")
        if self.soft != 0:
            _number_or(self.soft, ("cv",), "soft", inf_ok=False)
        if not (isinstance(self.soft_min, int | float) and 0 < self.soft_min <= 1):
            raise ConfigError(f"kde.soft_min must be in (0, 1], got {self.soft_min!r}")
        if self.pool not in ("all", "labelled"):
            raise ConfigError(f"kde.pool must be 'all' or 'labelled', got {self.pool!r}")
        c = self.class_prior
        if c != "cv" and (isinstance(c, bool) or not isinstance(c, int | float) or not 0 <= c <= 1):
            raise ConfigError(f"kde.class_prior must be 'cv' or a number in [0, 1], got {c!r}")

    @property
    def enabled(self) -> bool:
        """Whether the run builds a class KDE."""
        return self.shrink is not None

    @property
    def alone(self) -> bool:
        """Whether the prior is the KDE alone (``shrink: inf``)."""
        return self.shrink is not None and self.shrink != "cv" and math.isinf(float(self.shrink))


def _xyz(lonlat: np.ndarray | Tensor, device: torch.device | str = "cpu") -> Tensor:
    """(N, 2) lon/lat degrees -> (N, 3) float64 unit vectors."""
    if isinstance(lonlat, Tensor):
        lonlat = lonlat.detach().double().cpu().numpy()
    return torch.as_tensor(lonlat_to_xyz(np.asarray(lonlat, np.float64)), dtype=torch.float64, device=device)


def _km(q: Tensor, p: Tensor) -> Tensor:
    """(B, 3), (M, 3) unit vectors -> (B, M) great-circle distances in km (float64)."""
    return (q @ p.T).clamp_(-1.0, 1.0).arccos_().mul_(EARTH_RADIUS_KM)  # in place: one (B, M) allocation


def _kernel(d: Tensor, h: float, shift: Tensor, out: Tensor | None = None) -> Tensor:
    """exp(shift - (d / h)² / 2) for (B, M) distances d and (B, 1) ``shift``, into ``out`` if given.

    The same operations as the expression, each in place (one (B, M) buffer instead of five
    fresh ones): (-(d/h)² · ½) + shift equals shift - ½ (d/h)² bit for bit.
    """
    return torch.div(d, h, out=out).square_().mul_(-0.5).add_(shift).exp_()


def _sums(d: Tensor, dg: Tensor, labels: Tensor, q: int, h: float, pool_n: Tensor | float,
          weights: Tensor | None = None, work: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Kernel sums S (B, Q) and pool means G (B,), both scaled by the same per-row factor.

    Each location's kernel counts times its weight in S. The factor is exp(d_min² / 2h²) with d_min the distance to the nearest pool location, so
    the nearest term is exp(0) = 1 (no underflow of G); excluded pairs carry d = inf. ``work``:
    optional buffers shaped like ``d`` and ``dg`` for the kernels (reused over a bandwidth grid).
    """
    dmin = dg.min(1, keepdim=True).values
    shift = 0.5 * (dmin / h) ** 2
    s = torch.zeros(d.shape[0], q, dtype=torch.float64, device=d.device)
    k = _kernel(d, h, shift, None if work is None else work[0])
    s.index_add_(1, labels, k if weights is None else k.mul_(weights))
    g = _kernel(dg, h, shift, None if work is None else work[1]).sum(1) / pool_n
    return s, g


def _log_ratio(s: Tensor, g: Tensor, counts: Tensor, alpha: float) -> Tensor:
    """Log ratios z = log((S + α G) / ((n + α) G)), (B, Q) float64; ``counts`` (Q,) or (B, Q)."""
    return torch.log1p(s / (alpha * g[:, None])) + (math.log(alpha) - torch.log(counts + alpha))


def shrink_weights(counts: Tensor, k: float) -> Tensor:
    """(Q,) network weights n / (n + k): 1 for k = 0, 0 for k = inf."""
    if k == 0:
        return torch.ones_like(counts)
    if math.isinf(k):
        return torch.zeros_like(counts)
    return counts / (counts + k)


class ClassKDE(nn.Module):
    """The class-KDE prior (module docs) of Q classes, as a module (its tensors follow ``.to``).

    Args:
        points: (M, 2) lon/lat degrees of the labelled locations, M >= 1.
        labels: (M,) class indices in [0, Q).
        num_classes: Q.
        pool: (P, 2) lon/lat degrees of the pool (should contain ``points``), P >= 1.
        bandwidth_km: h > 0.
        alpha: α > 0.
        shrink: k >= 0 of the network weight (inf: the KDE alone).
        weights: (M,) weight of each location in S_y and n_y (default 1; pseudo-labelled
            locations carry ``soft`` × P(y|I), module docs).
        class_prior: weight c >= 0 of the class-prior term c · log(Q p̂_y), p̂_y = (n_y + 1) /
            (Σ n + Q) (module docs).
        prior_rows: the first this many locations are the labelled ones that p̂_y counts (one
            each); default all. The pseudo-labelled locations after them do not count.
    """

    points_lonlat: Tensor
    weights: Tensor
    pool_lonlat: Tensor
    labels: Tensor
    points: Tensor
    pool: Tensor
    counts: Tensor

    def __init__(self, points: np.ndarray, labels: np.ndarray, num_classes: int, pool: np.ndarray,
                 bandwidth_km: float, alpha: float, shrink: float, weights: np.ndarray | None = None,
                 class_prior: float = 0.0, prior_rows: int | None = None) -> None:
        super().__init__()
        labels = np.asarray(labels, np.int64)
        w = np.ones(len(labels)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != labels.shape or not np.all(np.isfinite(w) & (w > 0)):
            raise ConfigError(f"kde: expected {len(labels)} finite weights > 0, got shape {w.shape}")
        if len(points) < 1 or len(points) != len(labels) or len(pool) < 1:
            raise ConfigError(f"kde: expected >= 1 labelled location with one label each and >= 1 pool location, "
                              f"got {len(points)} locations, {len(labels)} labels, {len(pool)} pool")
        if not (0 < bandwidth_km < math.inf and 0 < alpha < math.inf and shrink >= 0 and 0 <= class_prior < math.inf):
            raise ConfigError(f"kde: expected bandwidth_km > 0, alpha > 0 (finite), shrink >= 0 and class_prior >= 0, "
                              f"got {bandwidth_km}, {alpha}, {shrink}, {class_prior}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ConfigError(f"kde: labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
        self.register_buffer("points_lonlat", torch.as_tensor(np.asarray(points, np.float64)))
        self.register_buffer("pool_lonlat", torch.as_tensor(np.asarray(pool, np.float64)))
        self.register_buffer("labels", torch.as_tensor(labels))
        self.register_buffer("weights", torch.as_tensor(w))
        self.register_buffer("points", _xyz(points))
        self.register_buffer("pool", _xyz(pool))
        self.register_buffer("counts", torch.bincount(self.labels, self.weights, minlength=num_classes).double())
        self.bandwidth_km, self.alpha, self.shrink = float(bandwidth_km), float(alpha), float(shrink)
        self.class_prior = float(class_prior)
        self.prior_rows = len(labels) if prior_rows is None else int(prior_rows)
        if not 0 < self.prior_rows <= len(labels):
            raise ConfigError(f"kde: prior_rows must be in [1, {len(labels)}], got {prior_rows}")

    @property
    def num_classes(self) -> int:
        """Q."""
        return int(self.counts.numel())

    @torch.no_grad()
    def log_ratio(self, lonlat: Tensor) -> Tensor:
        """(B, 2) lon/lat degrees -> (B, Q) float64 z_y = log r_y (module docs)."""
        out = []
        for start in range(0, lonlat.shape[0], CHUNK):
            q = _xyz(lonlat[start : start + CHUNK], self.points.device)
            s, g = _sums(_km(q, self.points), _km(q, self.pool), self.labels, self.num_classes,
                         self.bandwidth_km, float(self.pool.shape[0]), self.weights)
            out.append(_log_ratio(s, g, self.counts, self.alpha))
        z = torch.cat(out) if out else torch.zeros(0, self.num_classes, dtype=torch.float64, device=self.counts.device)
        return z if self.class_prior == 0 else z + self.class_prior * self.log_prior()

    def log_prior(self) -> Tensor:
        """(Q,) float64 log(Q p̂_y), p̂_y = (n_y + 1) / (Σ n + Q): 0 for every class when they are balanced.

        n_y counts the labelled rows of class y (the first ``prior_rows``), not the pseudo-labelled ones.
        """
        q = self.num_classes
        n = torch.bincount(self.labels[: self.prior_rows], minlength=q).double()
        return torch.log(q * (n + 1.0) / (n.sum() + q))

    def pool_logits(self, net_logits: Tensor, lonlat: Tensor) -> Tensor:
        """``w_y f_y + (1 - w_y) z_y`` for the network's (B, Q) logits, in their dtype and device."""
        z = self.log_ratio(lonlat).to(net_logits.device)
        if math.isinf(self.shrink):
            return z.to(net_logits.dtype)
        w = shrink_weights(self.counts, self.shrink).to(net_logits.device)
        return (w * net_logits.double() + (1.0 - w) * z).to(net_logits.dtype)

    def saved(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """(tensors, JSON metadata) to store beside a prior's weights (:meth:`from_saved`)."""
        tensors = {"kde.points": self.points_lonlat, "kde.labels": self.labels, "kde.pool": self.pool_lonlat,
                   "kde.weights": self.weights}
        meta: dict[str, Any] = {"bandwidth_km": self.bandwidth_km, "alpha": self.alpha,
                                "shrink": "inf" if math.isinf(self.shrink) else self.shrink}
        if self.class_prior:
            meta["class_prior"] = self.class_prior
        if self.prior_rows != len(self.labels):
            meta["prior_rows"] = self.prior_rows
        return {k: v.detach().cpu().clone() for k, v in tensors.items()}, meta

    @classmethod
    def from_saved(cls, tensors: dict[str, Tensor], meta: dict[str, Any], num_classes: int) -> ClassKDE:
        """Inverse of :meth:`saved`.

        Raises:
            ConfigError: missing tensors or metadata, or values out of range.
        """
        try:
            return cls(tensors["kde.points"].double().numpy(), tensors["kde.labels"].long().numpy(), num_classes,
                       tensors["kde.pool"].double().numpy(), float(meta["bandwidth_km"]), float(meta["alpha"]),
                       float(meta["shrink"]), tensors["kde.weights"].double().numpy(),
                       float(meta.get("class_prior", 0.0)), meta.get("prior_rows"))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"kde: stored tensors or metadata incomplete ({e})") from None
