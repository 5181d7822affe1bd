"""GeoWorld's image-feature model: genus prototypes, class offsets and the habitat field.

An image feature is ``genus prototype + class offset + noise + habitat(location)`` (see
docs/geoworld.md): classes of one genus look alike, and a photo also shows the habitat
around the organism, a smooth random function of where it was taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geocsp.coords import EARTH_RADIUS_KM
from geocsp.data.geoworld.config import GeoWorldConfig

__all__ = ["FeatureModel", "feature_model", "fill_features", "habitat"]

_CHUNK_ROWS = 32768


@dataclass(frozen=True, eq=False)
class FeatureModel:
    """The class means and the habitat field of a world (D = feature_dim, M = habitat_rank).

    Args:
        mean: (Q, D) float32 class means, genus prototype + class offset.
        omega: (3, M) random frequencies Ω of the habitat field, per unit of the sphere.
        phase: (M,) random phases φ in [0, 2π).
        mix: (M, D) mixing matrix A of the habitat field, scaled by √(2/M).
    """

    mean: np.ndarray
    omega: np.ndarray
    phase: np.ndarray
    mix: np.ndarray


def feature_model(cfg: GeoWorldConfig, genus: np.ndarray, rng: np.random.Generator) -> FeatureModel:
    """Draw the class means and the habitat field's random Fourier features.

    Args:
        cfg: the world's knobs.
        genus: (Q,) int genus of each class.
        rng: the feature model's random stream.

    Returns:
        The :class:`FeatureModel`.
    """
    d, m = cfg.feature_dim, cfg.habitat_rank
    proto = rng.standard_normal((cfg.num_genera, d)) * (cfg.genus_norm / math.sqrt(d))
    offset = rng.standard_normal((cfg.num_classes, d)) * (cfg.class_norm / math.sqrt(d))
    return FeatureModel(
        mean=(proto[genus] + offset).astype(np.float32),
        omega=rng.standard_normal((3, m)) * (EARTH_RADIUS_KM / cfg.habitat_length_km),
        phase=rng.uniform(0.0, 2.0 * np.pi, m),
        mix=(rng.standard_normal((m, d)) * (cfg.habitat_norm / math.sqrt(d)) * math.sqrt(2.0 / m)),
    )


def habitat(model: FeatureModel, xyz: np.ndarray) -> np.ndarray:
    """(N, D) habitat component: √(2/M) cos(xyz Ω + φ) A, a smooth random field on the sphere.

    Ω ~ N(0, (R/ℓ)² I) makes it a stationary Gaussian field with squared-exponential
    correlation of length ℓ = habitat_length_km; its RMS norm is habitat_norm.

    Args:
        model: the feature model.
        xyz: (N, 3) unit vectors.

    Returns:
        (N, D) float32.
    """
    return (np.cos(xyz @ model.omega + model.phase) @ model.mix).astype(np.float32)


def fill_features(model: FeatureModel, y: np.ndarray, xyz: np.ndarray, noise_std: float,
                  rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """out[i] = mean[y_i] + noise_std · ε_i + habitat(x_i), chunk by chunk (out may be a memmap).

    Args:
        model: the feature model.
        y: (N,) int class indices.
        xyz: (N, 3) unit vectors of the locations.
        noise_std: per-dimension std of the per-photo noise ε.
        rng: numpy Generator of the noise.
        out: (N, D) float32 array to fill.

    Returns:
        ``out``.
    """
    d = out.shape[1]
    for s in range(0, len(y), _CHUNK_ROWS):
        e = min(len(y), s + _CHUNK_ROWS)
        chunk = rng.standard_normal((e - s, d), dtype=np.float32) * np.float32(noise_std)
        chunk += model.mean[y[s:e]]
        chunk += habitat(model, xyz[s:e])
        out[s:e] = chunk
    return out
