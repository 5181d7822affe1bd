"""KDE of presences (bandwidth rules, log ratio), shrinkage toward it, and the KDE SDM model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geocsp.errors import ConfigError
from geocsp.sdm import FitOptions, FittedSDM, SDMConfig, fit_sdm
from geocsp.sdm.config import MODEL_KINDS, ModelChoice
from geocsp.sdm.fit import SDM_MODELS, fit_kde
from geocsp.sdm.kde import (
    SHRINK_GRID,
    SpeciesKDE,
    loo_bandwidth_km,
    parse_bandwidth,
    parse_shrink,
    shrink,
    shrink_weights,
)
from geocsp.sdm.shrinkage import select_shrinkage

from .conftest import SMALL, in_disc, synth_points


def test_loo_bandwidth_follows_the_spread_of_the_points() -> None:
    rng = np.random.default_rng(0)
    tight = in_disc(rng, 200, 10.0, 10.0, 0.05)  # ~5 km
    wide = in_disc(rng, 200, 10.0, 10.0, 5.0)  # ~500 km
    assert loo_bandwidth_km(tight) < 10 < 30 < loo_bandwidth_km(wide)
    dup = np.repeat(wide[:50], 3, axis=0)  # duplicates do not pull the bandwidth to the minimum
    assert loo_bandwidth_km(dup) >= 20
    assert loo_bandwidth_km(np.array([[1.0, 1.0], [1.0, 1.0]])) == 10.0  # < 3 distinct points: Scott's floor


def test_log_ratio_ranks_by_distance_even_far_away() -> None:
    pts = np.array([[0.0, 0.0], [0.1, 0.0]])
    kde = SpeciesKDE.fit(pts, np.array(["a", "a"]), np.array([[5.0, 5.0], [0.0, 0.0]]), bandwidth=5.0)
    z = kde.log_ratio(np.array([[0.05, 0.0], [1.0, 0.0], [20.0, 0.0], [40.0, 0.0]]))[:, 0]
    assert np.isfinite(z).all() and z[0] > z[1] > z[2] > z[3]  # no ties at zero density far away
    assert kde.counts.tolist() == [2.0]


def test_bandwidth_and_shrink_parsing_and_config_errors() -> None:
    assert parse_bandwidth("cv") == "cv" and parse_bandwidth("12.5") == 12.5
    assert parse_shrink(None) is None and parse_shrink("cv") == "cv" and parse_shrink("inf") == math.inf
    for bad in ("0", "-3", "wide", "nan"):
        with pytest.raises(ConfigError, match=r"model\.bandwidth"):
            parse_bandwidth(bad)
    with pytest.raises(ConfigError, match=r"model\.shrink"):
        parse_shrink("-1")
    with pytest.raises(ConfigError, match=r"model\.kind"):
        ModelChoice(kind="maxent")
    with pytest.raises(ConfigError, match="coordinates only"):
        ModelChoice(kind="kde", shrink=10)
    assert sorted(MODEL_KINDS) == sorted(SDM_MODELS.names())


def test_shrink_weights_and_pool() -> None:
    counts = np.array([1.0, 9.0, 99.0])
    np.testing.assert_allclose(shrink_weights(counts, 1.0), [0.5, 0.9, 0.99])
    net, kde = np.ones((2, 3)), np.zeros((2, 3))
    np.testing.assert_allclose(shrink(net, kde, counts, 0.0), net)
    np.testing.assert_allclose(shrink(net, kde, counts, math.inf), kde)
    np.testing.assert_allclose(shrink(net, kde, counts, 1.0)[0], [0.5, 0.9, 0.99])


def test_kde_model_and_shrunk_model_round_trip(synth_tables, tmp_path) -> None:
    pres, bg = synth_points(synth_tables)
    kde = fit_kde(pres, bg, "cv")
    assert kde.kind == "kde" and kde.model is None
    sites = np.array([[10.0, 10.0], [4.0, 4.0], [18.0, 2.0]])
    p = kde.predict(sites, np.zeros((3, 0)), np.full(3, np.nan))
    assert p[0, kde.species.index("disc")] > p[2, kde.species.index("disc")]
    assert p[1, kde.species.index("corner")] > p[0, kde.species.index("corner")]
    kde.save(tmp_path / "kde")
    back = FittedSDM.load(tmp_path / "kde")
    assert back.kind == "kde"
    np.testing.assert_allclose(back.predict(sites, np.zeros((3, 0)), np.full(3, np.nan)), p)

    net = fit_sdm(pres, bg, SDMConfig(inputs="position", position=SMALL), FitOptions(epochs=2, device="cpu"))
    net.kde, net.shrink_k = kde.kde, 30.0
    cov = np.zeros((3, 1))
    pooled = net.logits(sites, cov, np.full(3, np.nan))
    net.save(tmp_path / "shrunk")
    back = FittedSDM.load(tmp_path / "shrunk")
    assert back.kind == "shrunk" and back.shrink_k == 30.0
    np.testing.assert_allclose(back.logits(sites, cov, np.full(3, np.nan)), pooled, rtol=1e-6)


def test_select_shrinkage_uses_training_folds_only(synth_tables) -> None:
    pres, bg = synth_points(synth_tables)
    seen: list[int] = []

    def fit_net(tp, tb, species):
        seen.append(len(tp))
        return fit_sdm(tp, tb, SDMConfig(inputs="position", position=SMALL), FitOptions(epochs=1, device="cpu"),
                       species=species)

    res = select_shrinkage(pres, bg, fit_net, "scott", k=2, block_deg=5.0, seed=0)
    assert res["k"] in SHRINK_GRID and set(res["cv_mean_auc"]) == {str(k) for k in SHRINK_GRID}
    assert len(seen) == 2 and all(n < len(pres) for n in seen)  # each net saw only its training folds
    best = res["cv_mean_auc"][str(res["k"])]
    assert best == max(v for v in res["cv_mean_auc"].values() if math.isfinite(v))
