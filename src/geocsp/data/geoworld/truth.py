"""GeoWorld's ground truth on disk and its densities (docs/geoworld.md).

``truth.npz`` beside a world stores everything needed to evaluate it (:class:`Truth`):
``centers_lonlat`` (Q, K, 2), ``weights`` (Q, K), ``kappa`` / ``range_km`` (Q,),
``land_mass`` L (Q,), ``abundance`` (Q,) (train share), ``train_counts`` (Q,), ``genus`` (Q,)
and ``realm_lonlat`` (G, 2). The range density of class c (see
:mod:`geocsp.data.geoworld.ranges`) is

    f_c(x) = land(x) · Σ_k w_k vMF(x; μ_k, κ_c) / L_c,   L_c = P_mixture(land),

per steradian of the unit sphere (divide by R² for per km²).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.coords import lonlat_to_xyz, validate_lonlat
from geocsp.errors import ConfigError, DatasetError, MissingFileError
from geocsp.landmask import is_land_xyz

__all__ = ["TRUTH_FILE", "Truth", "load_truth", "true_location_probs", "true_range_density"]

TRUTH_FILE = "truth.npz"


@dataclass(frozen=True, eq=False)
class Truth:
    """The true ranges and abundance of a world; the arrays of ``truth.npz``.

    The field order is the order of the arrays in ``truth.npz`` (see :meth:`to_npz`).

    Args:
        genus: (Q,) int64 genus of each class.
        realm_lonlat: (G, 2) longitude, latitude in degrees of each genus' home region.
        centers_lonlat: (Q, K, 2) longitude, latitude in degrees of the vMF component means.
        weights: (Q, K) component weights, rows summing to 1 (0 for unused components).
        range_km: (Q,) component scale of each class, km.
        kappa: (Q,) vMF concentration κ = (R_earth / range_km)².
        train_counts: (Q,) int64 train rows per class.
        abundance: (Q,) train share of each class, summing to 1.
        land_mass: (Q,) L_c, Monte Carlo P(land) under the untruncated mixture.
    """

    genus: np.ndarray
    realm_lonlat: np.ndarray
    centers_lonlat: np.ndarray
    weights: np.ndarray
    range_km: np.ndarray
    kappa: np.ndarray
    train_counts: np.ndarray
    abundance: np.ndarray
    land_mass: np.ndarray

    @property
    def num_classes(self) -> int:
        """Q, the number of classes."""
        return len(self.kappa)

    def to_npz(self) -> dict[str, np.ndarray]:
        """The arrays keyed and ordered as in ``truth.npz`` (``np.savez(fh, **truth.to_npz())``).

        Returns:
            Field name -> array, in field order.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_npz(cls, arrays: Mapping[str, Any]) -> Truth:
        """Build from the arrays of ``truth.npz`` (an ``np.load`` result or a dict).

        Args:
            arrays: array name -> array; extra keys are ignored.

        Returns:
            The :class:`Truth` (arrays read into memory).

        Raises:
            DatasetError: when an array is missing.
        """
        missing = [f.name for f in fields(cls) if f.name not in arrays]
        if missing:
            raise DatasetError(f"GeoWorld truth lacks the arrays {missing}")
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})


def load_truth(world: str | Path | Truth | Mapping[str, Any]) -> Truth:
    """The truth of a world: a :class:`Truth` (returned as is), its arrays, a world directory or a truth file.

    Args:
        world: a :class:`Truth`, a mapping of the ``truth.npz`` arrays, a world directory
            or the path of its ``truth.npz``.

    Returns:
        The :class:`Truth`.

    Raises:
        MissingFileError: when the directory holds no ``truth.npz``.
    """
    if isinstance(world, Truth):
        return world
    if isinstance(world, Mapping):
        return Truth.from_npz(world)
    path = Path(world)
    path = path / TRUTH_FILE if path.is_dir() else path
    if not path.is_file():
        raise MissingFileError(f"{path}: GeoWorld truth file not found; is this a GeoWorld directory?")
    with np.load(path, allow_pickle=False) as z:
        return Truth.from_npz(z)


def _log_density(truth: Truth, xyz: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(N, len(classes)) log f_c(x) per steradian (−inf in the ocean)."""
    mu = lonlat_to_xyz(truth.centers_lonlat[classes])  # (C, K, 3)
    kappa = truth.kappa[classes][:, None]  # (C, 1)
    with np.errstate(divide="ignore"):
        log_w = np.log(truth.weights[classes])  # (C, K)
    log_c = np.log(kappa) - np.log(2 * np.pi) - np.log1p(-np.exp(-2 * kappa))
    t = log_w + log_c + kappa * (np.einsum("nd,ckd->nck", xyz, mu) - 1.0)  # (N, C, K)
    top = t.max(axis=2, keepdims=True)
    out = top[..., 0] + np.log(np.exp(t - top).sum(axis=2)) - np.log(truth.land_mass[classes])
    out[~is_land_xyz(xyz)] = -np.inf
    return out


def true_range_density(world: str | Path | Truth | Mapping[str, Any], class_index: int,
                       lonlat: Any) -> np.ndarray:
    """True range density f_c of one class at the given points.

    Args:
        world: a world directory, its ``truth.npz`` or the loaded :class:`Truth`.
        class_index: class c in [0, Q).
        lonlat: (N, 2) longitude, latitude in degrees.

    Returns:
        (N,) float64 density per steradian (0 in the ocean); it integrates to 1 over the sphere.

    Raises:
        ConfigError: on a class index out of range.
        CoordinateError: on invalid coordinates.
    """
    truth = load_truth(world)
    q = truth.num_classes
    if not 0 <= int(class_index) < q:
        raise ConfigError(f"class_index {class_index} out of range [0, {q})")
    xyz = lonlat_to_xyz(validate_lonlat(lonlat, source="lonlat"))
    return np.exp(_log_density(truth, xyz, np.array([int(class_index)]))[:, 0])


def true_location_probs(world: str | Path | Truth | Mapping[str, Any], lonlat: Any) -> np.ndarray:
    """Oracle P(y | x) ∝ abundance_y · f_y(x), normalised per row.

    Rows off land or with a missing (NaN) location get the abundance prior alone.

    Args:
        world: a world directory, its ``truth.npz`` or the loaded :class:`Truth`.
        lonlat: (N, 2) longitude, latitude in degrees (NaN rows allowed).

    Returns:
        (N, Q) float64 probabilities, rows summing to 1.
    """
    truth = load_truth(world)
    ll = validate_lonlat(lonlat, allow_missing=True, source="lonlat")
    q, k = truth.weights.shape
    prior = np.log(truth.abundance)
    out = np.tile(truth.abundance / truth.abundance.sum(), (len(ll), 1))
    ok = np.flatnonzero(~np.isnan(ll).any(axis=1))
    step = max(1, (1 << 22) // (q * k))
    for s in range(0, len(ok), step):
        rows = ok[s : s + step]
        logit = prior + _log_density(truth, lonlat_to_xyz(ll[rows]), np.arange(q))
        top = logit.max(axis=1, keepdims=True)
        land = np.isfinite(top[:, 0])
        p = np.exp(logit[land] - top[land])
        out[rows[land]] = p / p.sum(axis=1, keepdims=True)
    return out
