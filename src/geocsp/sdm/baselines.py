"""Baselines that geocsp computes itself, next to its neural SDMs.

* :class:`KDEBaseline`: per-species kernel density on coordinates (Gaussian kernel of the
  great-circle distance), the classic "presence density" prior;
* :class:`LogisticBaseline`: per-species L2-regularised logistic regression of presence vs
  background on standardised covariates (a GLM; MaxEnt without feature expansion).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from geocsp.coords import EARTH_RADIUS_KM, lonlat_to_xyz


def scott_bandwidth_km(lonlat: np.ndarray) -> float:
    """Scott's rule on the sphere: 1.06 · σ · n^(-1/5), σ = RMS distance to the mean direction / √2.

    Floors at 10 km so that a single point or a tight cluster still gets a usable kernel.
    """
    xyz = lonlat_to_xyz(lonlat)
    m = xyz.mean(axis=0)
    norm = np.linalg.norm(m)
    m = m / norm if norm > 0 else np.array([1.0, 0.0, 0.0])
    ang = np.arccos(np.clip(xyz @ m, -1.0, 1.0)) * EARTH_RADIUS_KM
    sigma = np.sqrt(np.mean(ang**2) / 2.0) if len(ang) else 0.0
    return float(max(10.0, 1.06 * sigma * max(len(lonlat), 1) ** (-0.2)))


@dataclass
class KDEBaseline:
    """Per-species Gaussian KDE on great-circle distance.

    Args:
        bandwidth_km: kernel bandwidth; None = Scott's rule per species.
    """

    bandwidth_km: float | None = None
    species: list[str] = field(default_factory=list)
    _points: list[np.ndarray] = field(default_factory=list)
    _bw: list[float] = field(default_factory=list)

    def fit(self, lonlat: np.ndarray, species: np.ndarray) -> KDEBaseline:
        """Fit on (N, 2) presence coordinates and (N,) species names."""
        species = np.asarray(species).astype(str)
        self.species = sorted(set(species.tolist()))
        self._points, self._bw = [], []
        for s in self.species:
            pts = lonlat_to_xyz(lonlat[species == s])
            self._points.append(pts)
            self._bw.append(self.bandwidth_km or scott_bandwidth_km(lonlat[species == s]))
        return self

    def predict(self, lonlat: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """(M, 2) sites -> (M, S) unnormalised densities (mean kernel value)."""
        q = lonlat_to_xyz(lonlat)
        out = np.zeros((len(q), len(self.species)))
        for j, (pts, bw) in enumerate(zip(self._points, self._bw, strict=True)):
            h = bw / EARTH_RADIUS_KM
            for i in range(0, len(q), chunk):
                cos = np.clip(q[i : i + chunk] @ pts.T, -1.0, 1.0)
                d = np.arccos(cos)
                out[i : i + chunk, j] = np.exp(-0.5 * (d / h) ** 2).mean(axis=1)
        return out


@dataclass
class LogisticBaseline:
    """Per-species logistic regression, presence (1) vs background (0), on covariates.

    Presences and background are weighted to equal total weight (the usual
    presence/background balancing). Covariates are standardised on the fitting data.

    Args:
        l2: L2 penalty on the coefficients (not the intercept).
    """

    l2: float = 1.0
    species: list[str] = field(default_factory=list)
    coef: np.ndarray | None = None  # (S, K + 1), intercept last
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def fit(self, pres_x: np.ndarray, species: np.ndarray, bg_x: np.ndarray) -> LogisticBaseline:
        """Fit on presence covariates (N, K), species (N,), background covariates (M, K)."""
        species = np.asarray(species).astype(str)
        allx = np.vstack([pres_x, bg_x])
        self.mean = allx.mean(axis=0)
        std = allx.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        self.species = sorted(set(species.tolist()))
        coefs = []
        zb = (bg_x - self.mean) / self.std
        for s in self.species:
            zp = (pres_x[species == s] - self.mean) / self.std
            coefs.append(self._fit_one(zp, zb))
        self.coef = np.stack(coefs)
        return self

    def _fit_one(self, zp: np.ndarray, zb: np.ndarray) -> np.ndarray:
        x = np.vstack([zp, zb])
        x1 = np.hstack([x, np.ones((len(x), 1))])
        y = np.r_[np.ones(len(zp)), np.zeros(len(zb))]
        w = np.r_[np.full(len(zp), 0.5 / len(zp)), np.full(len(zb), 0.5 / len(zb))]

        def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
            z = x1 @ beta
            # log(1 + exp(z)) - y z, stably
            ll = np.logaddexp(0.0, z) - y * z
            p = 1.0 / (1.0 + np.exp(-z))
            g = x1.T @ (w * (p - y))
            reg = 0.5 * self.l2 * np.sum(beta[:-1] ** 2) / max(len(zp), 1)
            g[:-1] += self.l2 * beta[:-1] / max(len(zp), 1)
            return float(np.sum(w * ll) + reg), g

        res = minimize(loss, np.zeros(x1.shape[1]), jac=True, method="L-BFGS-B")
        return res.x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(M, K) covariates -> (M, S) presence probabilities (relative suitability)."""
        assert self.coef is not None, "fit first"
        z = (x - self.mean) / self.std
        z1 = np.hstack([z, np.ones((len(z), 1))])
        return 1.0 / (1.0 + np.exp(-(z1 @ self.coef.T)))
