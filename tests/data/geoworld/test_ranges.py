"""Tests of geocsp.data.geoworld.ranges: vMF sampling, land, the long tail."""

from __future__ import annotations

import numpy as np

from geocsp.coords import lonlat_to_xyz
from geocsp.data.geoworld.ranges import is_land, sample_vmf, vmf_log_density, zipf_counts


def test_ranges_on_land_and_long_tail(small) -> None:
    from global_land_mask import globe

    _, ds = small
    ll = np.concatenate([ds.split(n).lonlat for n in ds.split_names])
    ll = ll[~np.isnan(ll).any(1)]
    assert globe.is_land(ll[:, 1], ll[:, 0]).mean() >= 0.99
    counts = np.bincount(ds.split("train").labels)
    assert counts.min() >= 2 and counts.max() / counts.min() >= 10
    assert (np.sort(counts)[::-1][:4].sum() / counts.sum()) > 4 / len(counts) * 2  # head-heavy


def test_is_land_is_bit_exact_with_global_land_mask() -> None:
    from global_land_mask import globe

    rng = np.random.default_rng(5)
    ll = np.column_stack([rng.uniform(-180, 180, 300_000), rng.uniform(-90, 90, 300_000)])
    ll = np.vstack([ll, [[-180, -90], [180, 90], [179.999, 89.999], [0, 0], [-0.004, 51.5]]])
    np.testing.assert_array_equal(is_land(lonlat_to_xyz(ll)), globe.is_land(ll[:, 1], ll[:, 0]))


def test_vmf_sampler_matches_closed_form_mean_cosine() -> None:
    rng = np.random.default_rng(0)
    mu = lonlat_to_xyz(np.array([[30.0, 40.0]]))
    for kappa in (2.0, 50.0, 1000.0):
        x = sample_vmf(np.repeat(mu, 200_000, 0), np.full(200_000, kappa), rng)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
        expected = 1.0 / np.tanh(kappa) - 1.0 / kappa  # E[μ·x] = coth κ − 1/κ
        assert abs((x @ mu[0]).mean() - expected) < 3e-3 * (1 - expected + 1e-3) * 10


def test_vmf_density_integrates_to_one() -> None:
    mu = np.array([0.0, 0.0, 1.0])
    t = np.linspace(-1.0, 1.0, 400_001)  # t = cos(angle to μ); dΩ = 2π dt
    x = np.stack([np.sqrt(1 - t**2), np.zeros_like(t), t], axis=1)
    for kappa in (0.5, 20.0, 900.0):
        f = np.exp(vmf_log_density(x, mu, np.float64(kappa)))
        ref = kappa / (2 * np.pi * (1 - np.exp(-2 * kappa))) * np.exp(kappa * (t - 1))
        np.testing.assert_allclose(f, ref, rtol=1e-10, atol=1e-300)
        assert abs(2 * np.pi * np.trapezoid(f, t) - 1.0) < 1e-4


def test_zipf_counts() -> None:
    n = zipf_counts(200, 10_000, 1.2, 2, 500)
    assert n.sum() == 10_000 and n.min() >= 2 and n.max() <= 500 and (np.diff(n) <= 0).all()
    mid = (n > 2) & (n < 500)
    r = np.arange(1, 201)[mid]
    slope = np.polyfit(np.log(r), np.log(n[mid]), 1)[0]
    assert abs(slope + 1.2) < 0.1
