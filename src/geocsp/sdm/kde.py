"""Kernel density of each species' presences on coordinates, and shrinkage toward it.

**KDE** (``sdm fit --model kde``, and the ``kde`` term of a shrunk neural SDM): a Gaussian
kernel of the great-circle distance, one bandwidth per species,

    dens_s(x) = 1 / (n_s 2 pi h_s^2) sum_i exp(-d(x, x_i)^2 / (2 h_s^2))     (km^-2),

evaluated in log space (log-sum-exp), so sites far from every presence keep their order
(the nearest presence dominates) instead of tying at zero. The bandwidth rule
(:data:`BANDWIDTH_RULES`): ``cv`` (default) maximises the leave-one-out log-likelihood of the
species' own presences over :data:`BANDWIDTHS_KM` (duplicate coordinates counted once,
at most :data:`LOO_MAX_POINTS` points, seeded); ``scott`` is Scott's rule
(:func:`geocsp.sdm.baselines.scott_bandwidth_km`); a species with fewer than 3 distinct
points gets Scott's rule. The score is the log density ratio against the training
background, ``z_s(x) = log dens_s(x) - log mean_bg dens_s`` -- under a uniform background
an estimate of ``log p(x | s) / p(x | background)`` -- and the suitability ``sigmoid(z_s)``.

**Shrinkage** (``--shrink-to-kde``): a neural SDM's logit ``f_s(x)`` and the KDE's
``z_s(x)`` are pooled log-linearly with a weight that grows with the species' presences,

    score_s(x) = w_s f_s(x) + (1 - w_s) z_s(x),   w_s = n_s / (n_s + k),

so a species with few presences stays close to its KDE. ``k`` is fixed, or chosen by
spatial-block CV on the training presences and background (:func:`select_shrinkage` in
:mod:`geocsp.sdm.cv`); ``k = inf`` is the KDE alone, ``k = 0`` the network alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from geocsp.coords import EARTH_RADIUS_KM, lonlat_to_xyz
from geocsp.errors import ConfigError
from geocsp.sdm.baselines import scott_bandwidth_km

BANDWIDTHS_KM = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 80.0, 120.0, 200.0, 300.0, 500.0)
"""Candidate bandwidths (km) of the leave-one-out rule."""

BANDWIDTH_RULES = ("cv", "scott")
"""Named bandwidth rules; a number is a fixed bandwidth in km."""

LOO_MAX_POINTS = 2000
"""At most this many distinct presences (seeded sample) enter the leave-one-out likelihood."""

SHRINK_GRID = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, math.inf)
"""Candidate ``k`` of the shrinkage weight ``n / (n + k)`` when chosen by CV."""


def log_kernel_mean(query: np.ndarray, points: np.ndarray, h_km: float, chunk: int = 4096) -> np.ndarray:
    """``log mean_i exp(-d(q, x_i)^2 / (2 h^2))`` for every query point.

    Args:
        query: (M, 2) lon/lat degrees.
        points: (n, 2) lon/lat degrees, n >= 1.
        h_km: bandwidth in km.
        chunk: query rows per block.

    Returns:
        (M,) float64 log mean kernel value (finite everywhere).
    """
    q, p = lonlat_to_xyz(np.asarray(query, float)), lonlat_to_xyz(np.asarray(points, float))
    h = h_km / EARTH_RADIUS_KM
    out = np.empty(len(q))
    for i in range(0, len(q), chunk):
        d = np.arccos(np.clip(q[i : i + chunk] @ p.T, -1.0, 1.0))
        out[i : i + chunk] = logsumexp(-0.5 * (d / h) ** 2, axis=1) - math.log(len(p))
    return out


def loo_bandwidth_km(lonlat: np.ndarray, candidates: tuple[float, ...] = BANDWIDTHS_KM, seed: int = 0) -> float:
    """The candidate bandwidth with the highest leave-one-out log-likelihood.

    Duplicate coordinates are counted once (otherwise a pair at the same place pulls the
    bandwidth to the smallest candidate); fewer than 3 distinct points -> Scott's rule.

    Args:
        lonlat: (n, 2) presence coordinates of one species.
        candidates: bandwidths to try, km.
        seed: seed of the subsample when there are more than :data:`LOO_MAX_POINTS` points.

    Returns:
        The bandwidth in km.
    """
    pts = np.unique(np.round(np.asarray(lonlat, float), 6), axis=0)
    if len(pts) < 3:
        return scott_bandwidth_km(np.asarray(lonlat, float))
    if len(pts) > LOO_MAX_POINTS:
        pts = pts[np.random.default_rng(seed).choice(len(pts), LOO_MAX_POINTS, replace=False)]
    xyz = lonlat_to_xyz(pts)
    d_km = np.arccos(np.clip(xyz @ xyz.T, -1.0, 1.0)) * EARTH_RADIUS_KM
    best, best_ll = candidates[0], -math.inf
    for h in candidates:
        logk = -0.5 * (d_km / h) ** 2
        np.fill_diagonal(logk, -np.inf)
        ll = float(np.mean(logsumexp(logk, axis=1) - math.log(len(pts) - 1) - math.log(2 * math.pi * h * h)))
        if ll > best_ll:
            best, best_ll = h, ll
    return float(best)


def bandwidth_for(lonlat: np.ndarray, rule: str | float) -> float:
    """The bandwidth (km) of one species' presences under ``rule`` (``cv``, ``scott`` or km).

    Raises:
        ConfigError: an unknown rule or a non-positive bandwidth.
    """
    if isinstance(rule, int | float) and not isinstance(rule, bool):
        if not (math.isfinite(rule) and rule > 0):
            raise ConfigError(f"kde bandwidth must be > 0 km, got {rule!r}")
        return float(rule)
    if rule == "cv":
        return loo_bandwidth_km(lonlat)
    if rule == "scott":
        return scott_bandwidth_km(lonlat)
    raise ConfigError(f"kde bandwidth must be one of {', '.join(BANDWIDTH_RULES)} or a number of km, got {rule!r}")


@dataclass
class SpeciesKDE:
    """Per-species KDE scores (see the module docstring).

    Attributes:
        species: Q species names.
        points: Q arrays (n_s, 2) of presence lon/lat.
        bandwidth_km: (Q,) bandwidths.
        log_norm: (Q,) ``log mean_bg dens_s`` (0 without background).
    """

    species: list[str]
    points: list[np.ndarray]
    bandwidth_km: np.ndarray
    log_norm: np.ndarray

    @classmethod
    def fit(cls, lonlat: np.ndarray, species: np.ndarray, bg_lonlat: np.ndarray | None,
            bandwidth: str | float = "cv", order: list[str] | None = None) -> SpeciesKDE:
        """Fit on presences (N, 2) with species (N,), normalised on background (M, 2).

        Args:
            lonlat: presence coordinates, degrees.
            species: presence species names.
            bg_lonlat: background coordinates, or None (then ``log_norm`` is 0).
            bandwidth: ``cv``, ``scott`` or a bandwidth in km.
            order: species order (default sorted names); a listed species without presences
                is refused.

        Returns:
            The fitted KDE.

        Raises:
            ConfigError: unknown bandwidth rule, or a species in ``order`` without presences.
        """
        species = np.asarray(species).astype(str)
        names = order or sorted(set(species.tolist()))
        pts, bws, norms = [], [], []
        for s in names:
            p = np.asarray(lonlat, float)[species == s]
            if len(p) == 0:
                raise ConfigError(f"kde: species '{s}' has no presence")
            h = bandwidth_for(p, bandwidth)
            pts.append(p)
            bws.append(h)
            norms.append(0.0 if bg_lonlat is None or len(bg_lonlat) == 0
                         else float(logsumexp(log_kernel_mean(bg_lonlat, p, h)) - math.log(len(bg_lonlat))))
        return cls(list(names), pts, np.asarray(bws, float), np.asarray(norms, float))

    def log_ratio(self, lonlat: np.ndarray) -> np.ndarray:
        """(M, 2) sites -> (M, Q) ``z_s`` = log density relative to the background mean."""
        out = np.empty((len(lonlat), len(self.species)))
        for j, (p, h) in enumerate(zip(self.points, self.bandwidth_km, strict=True)):
            out[:, j] = log_kernel_mean(lonlat, p, float(h)) - self.log_norm[j]
        return out

    @property
    def counts(self) -> np.ndarray:
        """(Q,) presences per species."""
        return np.array([len(p) for p in self.points], dtype=np.float64)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """(arrays, JSON metadata) for saving: all points concatenated plus per-species counts."""
        arrays = {"kde.points": np.concatenate(self.points).astype(np.float64),
                  "kde.counts": self.counts.astype(np.int64)}
        meta = {"species": self.species, "bandwidth_km": self.bandwidth_km.tolist(), "log_norm": self.log_norm.tolist()}
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> SpeciesKDE:
        """Inverse of :meth:`to_arrays`.

        Raises:
            KeyError, ValueError: when the stored arrays do not match the metadata.
        """
        counts = np.asarray(arrays["kde.counts"], dtype=np.int64)
        pts = np.split(np.asarray(arrays["kde.points"], float), np.cumsum(counts)[:-1])
        if len(pts) != len(meta["species"]):
            raise ValueError("kde: species and stored point groups differ")
        return cls(list(meta["species"]), pts, np.asarray(meta["bandwidth_km"], float), np.asarray(meta["log_norm"], float))


def shrink_weights(counts: np.ndarray, k: float) -> np.ndarray:
    """(Q,) weights ``n / (n + k)`` of the network (``k = inf`` -> 0, ``k = 0`` -> 1)."""
    counts = np.asarray(counts, float)
    if math.isinf(k):
        return np.zeros_like(counts)
    return counts / (counts + k) if k > 0 else np.ones_like(counts)


def shrink(net_logits: np.ndarray, kde_logits: np.ndarray, counts: np.ndarray, k: float) -> np.ndarray:
    """(M, Q) pooled logits ``w f + (1 - w) z`` with ``w = n / (n + k)`` per species column."""
    w = shrink_weights(counts, k)[None, :]
    if math.isinf(k):
        return kde_logits.copy()
    return w * net_logits + (1.0 - w) * kde_logits


def parse_bandwidth(value: str | float) -> str | float:
    """``--bandwidth``: ``cv``, ``scott`` or a number of km > 0.

    Raises:
        ConfigError: anything else.
    """
    if value in BANDWIDTH_RULES:
        return value
    try:
        km = float(value)
    except (TypeError, ValueError):
        km = -1.0
    if not (math.isfinite(km) and km > 0):
        raise ConfigError(f"model.bandwidth must be one of {', '.join(BANDWIDTH_RULES)} or a number of km > 0, "
                          f"got {value!r}")
    return km


def parse_shrink(value: str | float | None) -> float | str | None:
    """``--shrink-to-kde``: None (off), ``cv`` or a number k >= 0 (``inf`` = KDE alone).

    Raises:
        ConfigError: anything else.
    """
    if value is None or value == "cv":
        return value
    try:
        k = float(value)
    except (TypeError, ValueError):
        k = -1.0
    if not k >= 0:
        raise ConfigError(f"model.shrink must be 'cv' or a number k >= 0 (weight n/(n+k)), got {value!r}")
    return k
