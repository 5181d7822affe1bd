"""GeoWorld's ground truth: class ranges on the sphere and abundance (docs/geoworld.md).

A class range is a mixture of 1–3 von Mises–Fisher (vMF) components truncated to land:
component k is drawn with weight w_k, a point from vMF(μ_k, κ) with Wood's exact sampler,
and the whole draw is redrawn when it falls in the ocean (``global_land_mask``). The
accepted density is therefore

    f_c(x) = land(x) · Σ_k w_k vMF(x; μ_k, κ_c) / L_c,   L_c = P_mixture(land),

per steradian of the unit sphere (divide by R² for per km²); it is evaluated by
:mod:`geocsp.data.geoworld.truth`, which also holds the drawn :class:`Truth`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from geocsp.coords import EARTH_RADIUS_KM, lonlat_to_xyz, xyz_to_lonlat
from geocsp.data.geoworld.config import GeoWorldConfig
from geocsp.data.geoworld.truth import Truth
from geocsp.errors import ConfigError
from geocsp.landmask import is_land_xyz

__all__ = ["draw_range_points", "draw_truth", "is_land", "sample_vmf", "vmf_log_density", "zipf_counts"]

_CHUNK_ROWS = 32768
_MAX_REJECTION_ROUNDS = 10_000

# --------------------------------------------------------------------------- sphere


def sample_vmf(mu: np.ndarray, kappa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One exact draw from vMF(μ_i, κ_i) on S² per row (Wood 1994, closed form for p = 3).

    The cosine to the mean is w = 1 + log(u + (1 − u)e^{−2κ}) / κ with u ~ U(0, 1); the
    direction around μ is uniform.

    Args:
        mu: (M, 3) unit mean directions.
        kappa: (M,) concentrations > 0.
        rng: numpy Generator.

    Returns:
        (M, 3) unit vectors.
    """
    m = len(mu)
    kappa = np.broadcast_to(np.asarray(kappa, np.float64), (m,))
    u = rng.random(m)
    w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
    w = np.clip(w, -1.0, 1.0)
    theta = rng.random(m) * 2.0 * np.pi
    # orthonormal tangent basis (e1, e2) at mu
    helper = np.where(np.abs(mu[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    e1 = np.cross(mu, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(mu, e1)
    s = np.sqrt(1.0 - w * w)[:, None]
    return w[:, None] * mu + s * (np.cos(theta)[:, None] * e1 + np.sin(theta)[:, None] * e2)


def vmf_log_density(x: np.ndarray, mu: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Log-density of vMF on S² per steradian: log κ − log 2π − log(1 − e^{−2κ}) + κ(μ·x − 1).

    Args:
        x: (N, 3) unit vectors.
        mu: (..., 3) unit mean directions.
        kappa: (...) concentrations.

    Returns:
        (N, ...) log densities.
    """
    kappa = np.asarray(kappa, np.float64)
    log_c = np.log(kappa) - np.log(2 * np.pi) - np.log1p(-np.exp(-2 * kappa))
    return log_c + kappa * (np.tensordot(x, mu, axes=([1], [-1])) - 1.0)


def is_land(xyz: np.ndarray) -> np.ndarray:
    """(N,) bool, True where the (N, 3) unit vectors fall on land (:mod:`geocsp.landmask`)."""
    return is_land_xyz(xyz)


def _kappa(range_km: np.ndarray | float) -> np.ndarray:
    """Concentration κ = (R_earth / range_km)² of the vMF of a range scale in km."""
    return (EARTH_RADIUS_KM / np.asarray(range_km, np.float64)) ** 2


def _on_land(draw: Callable[[np.ndarray, np.random.Generator], np.ndarray], m: int,
             rng: np.random.Generator) -> np.ndarray:
    """Rejection to land: ``draw(idx, rng) -> (len(idx), 3)`` is redrawn where in the ocean."""
    out = np.empty((m, 3))
    todo = np.arange(m)
    for _ in range(_MAX_REJECTION_ROUNDS):
        if not len(todo):
            return out
        cand = draw(todo, rng)
        ok = is_land(cand)
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    raise ConfigError("GeoWorld: a range has almost no land; lower range_km_max or change the seed")


# --------------------------------------------------------------------------- truth


def zipf_counts(q: int, total: int, exponent: float, lo: int, hi: int) -> np.ndarray:
    """Per-rank counts ∝ rank^-s clipped to [lo, hi], summing exactly to ``total``.

    Args:
        q: number of ranks (classes).
        total: the sum of the counts.
        exponent: s.
        lo: floor on a count.
        hi: cap on a count.

    Returns:
        (q,) int64, non-increasing in rank.
    """
    r = np.arange(1, q + 1, dtype=np.float64) ** -exponent
    a0, a1 = 0.0, float(hi) * q
    for _ in range(200):  # bisection on the scale a of a·r^-s
        a = 0.5 * (a0 + a1)
        a0, a1 = (a, a1) if np.clip(a * r, lo, hi).sum() < total else (a0, a)
    t = np.clip(a1 * r, lo, hi)
    n = np.floor(t).astype(np.int64)
    rem = total - int(n.sum())
    order = np.argsort(-(t - n) - (n < hi), kind="stable")  # largest remainders first
    step = 1 if rem > 0 else -1
    for i in order[: abs(rem)]:
        n[i] += step
    return np.sort(n)[::-1]


def draw_truth(cfg: GeoWorldConfig, rng: np.random.Generator) -> Truth:
    """Genus assignment, ranges and abundance (see :class:`GeoWorldConfig`).

    Args:
        cfg: the world's knobs.
        rng: the truth's random stream.

    Returns:
        The :class:`Truth`.
    """
    q, g, k = cfg.num_classes, cfg.num_genera, cfg.max_components
    genus = np.concatenate([np.arange(g), rng.integers(0, g, q - g)])
    rng.shuffle(genus)
    realm = _on_land(lambda i, r: _uniform_sphere(len(i), r), g, rng)
    n_comp = rng.integers(1, k + 1, q)
    mu_realm = np.repeat(realm[genus][:, None, :], k, axis=1).reshape(-1, 3)
    centers = _on_land(
        lambda i, r: sample_vmf(mu_realm[i], _kappa(cfg.genus_realm_km), r), q * k, rng
    ).reshape(q, k, 3)
    weights = rng.dirichlet(np.ones(k), q) * (np.arange(k)[None, :] < n_comp[:, None])
    weights /= weights.sum(1, keepdims=True)
    range_km = np.exp(rng.uniform(np.log(cfg.range_km_min), np.log(cfg.range_km_max), q))
    counts = zipf_counts(q, cfg.train_rows, cfg.zipf_exponent, cfg.min_train_per_class,
                         cfg.max_train_per_class)[rng.permutation(q)]
    centers_lonlat = xyz_to_lonlat(centers.reshape(-1, 3)).reshape(q, k, 2)
    kappa = _kappa(range_km)
    return Truth(
        genus=genus.astype(np.int64), realm_lonlat=xyz_to_lonlat(realm), centers_lonlat=centers_lonlat,
        weights=weights, range_km=range_km, kappa=kappa, train_counts=counts,
        abundance=counts / counts.sum(),
        land_mass=_land_mass(centers_lonlat, weights, kappa, cfg.land_mc_samples, rng),
    )


def _uniform_sphere(m: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((m, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def draw_range_points(truth: Truth, y: np.ndarray, rng: np.random.Generator,
                      land: bool = True) -> np.ndarray:
    """(n, 3) draws from the ranges of classes ``y``: component by weight, then vMF.

    With ``land``, a draw in the ocean is redrawn whole (component and point), so the
    accepted density is ∝ land(x) · Σ_k w_k vMF_k(x).

    Args:
        truth: the world's truth.
        y: (n,) int class indices.
        rng: numpy Generator.
        land: truncate to land (rejection) or not.

    Returns:
        (n, 3) unit vectors.
    """
    return _mixture_points(truth.centers_lonlat, truth.weights, truth.kappa, y, rng, land)


def _mixture_points(centers_lonlat: np.ndarray, weights: np.ndarray, kappa: np.ndarray, y: np.ndarray,
                    rng: np.random.Generator, land: bool) -> np.ndarray:
    """:func:`draw_range_points` on the range arrays (Q, K, 2), (Q, K), (Q,) themselves."""
    cum = np.cumsum(weights, axis=1)
    centers = lonlat_to_xyz(centers_lonlat)

    def draw(idx: np.ndarray, r: np.random.Generator) -> np.ndarray:
        c = y[idx]
        comp = np.minimum((cum[c] < r.random(len(c))[:, None]).sum(1), weights.shape[1] - 1)
        return sample_vmf(centers[c, comp], kappa[c], r)

    return _on_land(draw, len(y), rng) if land else draw(np.arange(len(y)), rng)


def _land_mass(centers_lonlat: np.ndarray, weights: np.ndarray, kappa: np.ndarray, m: int,
               rng: np.random.Generator) -> np.ndarray:
    """(Q,) Monte Carlo P(land) under each class' untruncated mixture (≥ 1/(2m))."""
    q = len(kappa)
    hits = np.zeros(q)
    per = max(1, _CHUNK_ROWS * 8 // m)
    for start in range(0, q, per):
        y = np.repeat(np.arange(start, min(q, start + per)), m)
        ok = is_land(_mixture_points(centers_lonlat, weights, kappa, y, rng, land=False))
        hits[start : start + per] = ok.reshape(-1, m).sum(1)
    return np.maximum(hits, 0.5) / m
