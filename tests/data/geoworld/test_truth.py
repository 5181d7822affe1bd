"""Tests of geocsp.data.geoworld.truth: the oracle densities and location probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from geocsp.coords import lonlat_to_xyz, xyz_to_lonlat
from geocsp.data.geoworld import true_location_probs, true_range_density
from geocsp.data.geoworld.ranges import is_land
from geocsp.errors import ConfigError


def _manual_truth():
    c = np.array([[[10.0, 50.0], [20.0, 48.0]], [[-100.0, 40.0], [-100.0, 40.0]], [[25.0, 0.0], [30.0, 5.0]]])
    return {"centers_lonlat": c, "weights": np.array([[0.3, 0.7], [1.0, 0.0], [0.5, 0.5]]),
            "kappa": np.array([40.0, 5.0, 300.0]), "land_mass": np.array([0.9, 0.6, 0.8]),
            "abundance": np.array([0.5, 0.3, 0.2]),
            # not used by the densities; present so the dict is a complete truth.npz
            "genus": np.array([0, 0, 1]), "realm_lonlat": c[:2, 0], "range_km": np.array([1000.0, 2800.0, 370.0]),
            "train_counts": np.array([5, 3, 2])}


def test_true_location_probs_match_float64_reference() -> None:
    truth = _manual_truth()
    ll = np.array([[12.0, 49.0], [-95.0, 38.0], [28.0, 2.0], [-30.0, 0.0], [np.nan, np.nan]])
    x = lonlat_to_xyz(ll[:3])
    dens = np.zeros((3, 3))
    for c in range(3):
        k = truth["kappa"][c]
        for w, m in zip(truth["weights"][c], lonlat_to_xyz(truth["centers_lonlat"][c]), strict=True):
            dens[:, c] += w * k / (4 * np.pi * np.sinh(k)) * np.exp(k * (x @ m))
        dens[:, c] /= truth["land_mass"][c]
    ref = truth["abundance"] * dens
    ref /= ref.sum(1, keepdims=True)
    got = true_location_probs(truth, ll)
    assert is_land(x).all() and not is_land(lonlat_to_xyz(ll[3:4])).any()
    np.testing.assert_allclose(got[:3], ref, rtol=1e-9)
    np.testing.assert_allclose(got[3:], np.tile(truth["abundance"], (2, 1)), rtol=1e-12)
    np.testing.assert_allclose(true_range_density(truth, 2, ll[:3]), dens[:, 2], rtol=1e-9)
    with pytest.raises(ConfigError, match="class_index 3 out of range"):
        true_range_density(truth, 3, ll[:1])


def test_true_range_density_integrates_to_one_over_the_sphere(small) -> None:
    path, _ = small
    truth = np.load(path / "truth.npz")
    c = int(np.argmax(truth["range_km"]))  # widest range: low Monte Carlo variance
    v = np.random.default_rng(1).standard_normal((400_000, 3))

    f = true_range_density(path, c, xyz_to_lonlat(v / np.linalg.norm(v, axis=1, keepdims=True)))
    assert abs(4 * np.pi * f.mean() - 1.0) < 0.1
