"""The class-KDE prior (:mod:`geocsp.prior.kde`): its formula against a direct computation,
its limits, the pooling with a network, its config and its storage inside a GeoPrior."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from geocsp.config import dump_yaml, from_dict, load_yaml, to_dict
from geocsp.coords import great_circle_km
from geocsp.errors import CheckpointError, ConfigError
from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.prior import GeoPrior
from geocsp.prior.kde import EARTH_RADIUS_KM, ClassKDE, KDEConfig, _km, _sums, _xyz, shrink_weights


def _direct(query: np.ndarray, pts: np.ndarray, lab: np.ndarray, q: int, pool: np.ndarray, h: float,
            alpha: float) -> np.ndarray:
    """z_y(x) = log((S_y + α G) / ((n_y + α) G)) from the module docs, term by term (float64)."""
    out = np.empty((len(query), q))
    n = np.bincount(lab, minlength=q)
    for i, x in enumerate(query):
        k = np.exp(-great_circle_km(np.repeat(x[None], len(pts), 0), pts) ** 2 / (2 * h * h))
        g = np.exp(-great_circle_km(np.repeat(x[None], len(pool), 0), pool) ** 2 / (2 * h * h)).mean()
        s = np.bincount(lab, weights=k, minlength=q)
        out[i] = np.log((s + alpha * g) / ((n + alpha) * g))
    return out


@pytest.fixture
def toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-20, 20, 30), rng.uniform(-10, 10, 30)])
    lab = rng.integers(0, 3, 30)  # class 3 of 4 has no row
    pool = np.concatenate([pts, np.column_stack([rng.uniform(-60, 60, 50), rng.uniform(-40, 40, 50)])])
    return pts, lab, pool


def test_log_ratio_is_the_documented_formula(toy: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pts, lab, pool = toy
    kde = ClassKDE(pts, lab, 4, pool, bandwidth_km=900.0, alpha=0.5, shrink=math.inf)
    query = np.array([[0.0, 0.0], [15.0, -5.0], [-50.0, 30.0], [55.0, -35.0]])
    got = kde.log_ratio(torch.tensor(query, dtype=torch.float32)).numpy()
    want = _direct(query.astype(np.float32).astype(np.float64), pts, lab, 4, pool, 900.0, 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert np.all(got[:, 3] == 0.0)  # a class without a labelled row is neutral: sigmoid(0) = 0.5


def test_the_in_place_kernels_equal_the_expressions_bit_for_bit() -> None:
    """``_km`` / ``_sums`` compute in place (one buffer per kernel, optional reused buffers): the
    results must equal the plain expressions they replaced with ``==``, excluded (inf) pairs,
    weights and every bandwidth of the grid included."""
    rng = np.random.default_rng(3)
    lonlat = lambda n: np.column_stack([rng.uniform(-180, 180, n), rng.uniform(-90, 90, n)])  # noqa: E731
    q, p, pool = _xyz(lonlat(37)), _xyz(lonlat(211)), _xyz(lonlat(150))
    d_old = torch.arccos((q @ p.T).clamp_(-1.0, 1.0)) * EARTH_RADIUS_KM
    dg_old = torch.arccos((q @ pool.T).clamp_(-1.0, 1.0)) * EARTH_RADIUS_KM
    d, dg = _km(q, p), _km(q, pool)
    assert torch.equal(d, d_old) and torch.equal(dg, dg_old)
    d[torch.arange(5), torch.arange(5)] = math.inf  # leave-one-out exclusions
    labels = torch.as_tensor(rng.integers(0, 7, 211))
    weights = torch.as_tensor(rng.uniform(0.1, 2.0, 211))
    work = (torch.empty_like(d), torch.empty_like(dg))
    for h in (1.0, 25.0, 400.0, 3200.0, 1e5):
        shift = 0.5 * (dg.min(1, keepdim=True).values / h) ** 2
        k = torch.exp(shift - 0.5 * (d / h) ** 2)
        for w in (None, weights):
            s_old = torch.zeros(37, 7, dtype=torch.float64).index_add_(1, labels, k if w is None else k * w)
            g_old = torch.exp(shift - 0.5 * (dg / h) ** 2).sum(1) / 150.0
            for buf in (None, work):
                s, g = _sums(d, dg, labels, 7, h, 150.0, w, buf)
                assert torch.equal(s, s_old) and torch.equal(g, g_old), (h, w is None, buf is None)


def test_far_from_every_record_stays_finite_and_shrinks_to_the_floor(
        toy: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pts, lab, pool = toy
    kde = ClassKDE(pts, lab, 4, pool, bandwidth_km=50.0, alpha=0.5, shrink=math.inf)
    z = kde.log_ratio(torch.tensor([[170.0, -80.0]])).numpy()[0]  # thousands of bandwidths from every point
    n = np.bincount(lab, minlength=4)
    assert np.all(np.isfinite(z))
    # the nearest pool point dominates G and no class has a record nearby: z_y -> log(α / (n_y + α))
    np.testing.assert_allclose(z[:3], np.log(0.5 / (n[:3] + 0.5)), atol=1e-6)


def test_a_huge_alpha_is_no_information(toy: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pts, lab, pool = toy
    kde = ClassKDE(pts, lab, 4, pool, bandwidth_km=500.0, alpha=1e12, shrink=math.inf)
    assert torch.allclose(kde.log_ratio(torch.tensor(pts[:5], dtype=torch.float32)),
                          torch.zeros(5, 4, dtype=torch.float64), atol=1e-9)


def test_pooling_with_the_network(toy: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pts, lab, pool = toy
    x = torch.tensor(pts[:6], dtype=torch.float32)
    f = torch.randn(6, 4)
    z = ClassKDE(pts, lab, 4, pool, 500.0, 1.0, math.inf).log_ratio(x)
    assert torch.equal(ClassKDE(pts, lab, 4, pool, 500.0, 1.0, math.inf).pool_logits(f, x), z.float())
    assert torch.allclose(ClassKDE(pts, lab, 4, pool, 500.0, 1.0, 0.0).pool_logits(f, x), f)
    n = torch.bincount(torch.as_tensor(lab), minlength=4).double()
    w = n / (n + 3.0)
    want = (w * f.double() + (1 - w) * z).float()
    assert torch.allclose(ClassKDE(pts, lab, 4, pool, 500.0, 1.0, 3.0).pool_logits(f, x), want)
    assert shrink_weights(n, 0.0).tolist() == [1.0] * 4 and shrink_weights(n, math.inf).tolist() == [0.0] * 4


@pytest.mark.parametrize("bad", [{"shrink": -1}, {"shrink": "x"}, {"bandwidth_km": 0}, {"alpha": "inf"},
                                 {"alpha": -2}, {"pool_max": 0}, {"pool": "val"}, {"class_prior": 2},
                                 {"class_prior": "x"}, {"class_prior": -0.5}])
def test_config_refuses_bad_values_in_one_line(bad: dict) -> None:
    with pytest.raises(ConfigError, match=r"^(kde\.|pool: )") as e:
        from_dict(KDEConfig, bad)
    assert "\n" not in str(e.value)


def test_config_round_trips_through_yaml(tmp_path: Path) -> None:
    for cfg in (KDEConfig(), KDEConfig(shrink=math.inf), KDEConfig(shrink="cv", bandwidth_km=300.0, alpha=0.1),
                KDEConfig(shrink=3.0, pool="labelled", pool_max=50), KDEConfig(shrink=math.inf, class_prior="cv"),
                KDEConfig(shrink=math.inf, class_prior=0.5)):
        (tmp_path / "k.yaml").write_text(dump_yaml(to_dict(cfg)))
        assert from_dict(KDEConfig, load_yaml(tmp_path / "k.yaml")) == cfg
    assert KDEConfig(shrink="inf").alone and not KDEConfig(shrink="cv").alone and not KDEConfig().enabled


def test_the_class_prior_term(toy: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    pts, lab, pool = toy
    x = torch.tensor([[0.0, 0.0], [15.0, -5.0], [-50.0, 30.0]])
    base = ClassKDE(pts, lab, 4, pool, 900.0, 0.5, math.inf).log_ratio(x)
    n = np.bincount(lab, minlength=4)
    log_prior = np.log(4 * (n + 1) / (n.sum() + 4))  # Laplace-smoothed p̂_y, times Q
    for c in (0.5, 1.0):
        got = ClassKDE(pts, lab, 4, pool, 900.0, 0.5, math.inf, class_prior=c).log_ratio(x)
        np.testing.assert_allclose((got - base).numpy(), np.tile(c * log_prior, (3, 1)), rtol=1e-12, atol=1e-12)
    balanced = np.repeat(np.arange(3), 10)  # every class of the 3 the same count (Q = 3): the term is 0
    a = ClassKDE(pts, balanced, 3, pool, 900.0, 0.5, math.inf).log_ratio(x)
    assert torch.allclose(ClassKDE(pts, balanced, 3, pool, 900.0, 0.5, math.inf, class_prior=1.0).log_ratio(x), a,
                          rtol=0, atol=1e-12)
    prior = _prior(ClassKDE(pts, lab, 4, pool, 900.0, 0.5, math.inf, class_prior=0.5))
    loaded = GeoPrior.from_pretrained(prior.save_pretrained(tmp_path / "p"))
    assert loaded.kde is not None and loaded.kde.class_prior == 0.5
    assert torch.equal(loaded.logits(x), prior.logits(x))
    _, meta = ClassKDE(pts, lab, 4, pool, 900.0, 0.5, math.inf).saved()
    assert "class_prior" not in meta  # c = 0 stores what earlier versions stored
    # pseudo-labelled locations (after the first prior_rows) enter S_y and n_y but not p̂_y
    extra = np.column_stack([np.full(40, 5.0), np.full(40, 5.0)])
    both = ClassKDE(np.concatenate([pts, extra]), np.concatenate([lab, np.full(40, 3)]), 4, pool, 900.0, 0.5,
                    math.inf, np.concatenate([np.ones(30), np.full(40, 0.9)]), class_prior=1.0, prior_rows=30)
    np.testing.assert_allclose(both.log_prior().numpy(), log_prior, rtol=1e-12)
    back = ClassKDE.from_saved(*both.saved(), 4)
    assert back.prior_rows == 30 and torch.equal(back.log_ratio(x), both.log_ratio(x))
    with pytest.raises(ConfigError, match="prior_rows"):
        ClassKDE(pts, lab, 4, pool, 900.0, 0.5, math.inf, prior_rows=31)


def _prior(kde: ClassKDE | None) -> GeoPrior:
    torch.manual_seed(0)
    enc = LocationEncoder(LocationEncoderConfig(encoder="wrap", network="fcnet", dim=8,
                                                network_args={"num_res_blocks": 1}))
    return GeoPrior(enc, torch.randn(4, 8), ["a", "b", "c", "d"], kde=kde).eval()


def test_a_prior_with_a_kde_saves_and_loads(toy: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    pts, lab, pool = toy
    prior = _prior(ClassKDE(pts, lab, 4, pool, 400.0, 0.3, 10.0))
    x = torch.tensor([[0.0, 0.0], [100.0, 45.0]])
    plain = _prior(None).logits(x)
    assert not torch.allclose(prior.logits(x), plain)  # the KDE is pooled in
    loaded = GeoPrior.from_pretrained(prior.save_pretrained(tmp_path / "p"))
    assert loaded.kde is not None and loaded.kde.shrink == 10.0 and loaded.kde.bandwidth_km == 400.0
    assert torch.equal(loaded.logits(x), prior.logits(x))
    alone = GeoPrior.from_pretrained(_prior(ClassKDE(pts, lab, 4, pool, 400.0, 0.3, math.inf))
                                     .save_pretrained(tmp_path / "alone"))
    assert alone.kde is not None and math.isinf(alone.kde.shrink)


def test_a_corrupt_kde_entry_is_one_checkpoint_error(toy: tuple[np.ndarray, np.ndarray, np.ndarray],
                                                     tmp_path: Path) -> None:
    import json

    pts, lab, pool = toy
    d = _prior(ClassKDE(pts, lab, 4, pool, 400.0, 0.3, 10.0)).save_pretrained(tmp_path / "p")
    meta = json.loads((d / "config.json").read_text())
    for bad in ({"alpha": 0.3}, "x", {"bandwidth_km": -1, "alpha": 1, "shrink": 1}):
        meta["kde"] = bad
        (d / "config.json").write_text(json.dumps(meta))
        with pytest.raises(CheckpointError) as e:
            GeoPrior.from_pretrained(d)
        assert "\n" not in str(e.value)


def test_mismatched_inputs_are_refused(toy: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    pts, lab, pool = toy
    with pytest.raises(ConfigError, match="labels must lie"):
        ClassKDE(pts, lab + 5, 4, pool, 400.0, 1.0, 1.0)
    with pytest.raises(ConfigError, match="one label each"):
        ClassKDE(pts, lab[:3], 4, pool, 400.0, 1.0, 1.0)
    with pytest.raises(ConfigError, match="expected 4 classes"):
        GeoPrior(_prior(None).encoder, torch.randn(4, 8), kde=ClassKDE(pts, lab, 5, pool, 400.0, 1.0, 1.0))
