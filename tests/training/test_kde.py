"""Fitting a run's class-KDE prior (``finetune.kde``, :mod:`geocsp.training.kde`): the choices,
leave-one-out against a direct computation, the data it may read, and the run around it."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from tests.training.test_crossfit import TINY, _watched
from tests.training.test_crossfit import _world as quadrant_world

from geocsp.checkpoints import load_prior
from geocsp.config import to_dict
from geocsp.data import GeoDataset, load_dataset
from geocsp.data.writer import SplitData, write_dataset
from geocsp.demo.tables import METHODS
from geocsp.errors import ConfigError, DatasetError
from geocsp.experiments.provenance import run_key
from geocsp.prior.kde import ClassKDE, KDEConfig
from geocsp.training import FinetuneConfig, finetune, resolve_config
from geocsp.training.compat import config_dict_for_compare
from geocsp.training.kde import _grid_scores, fit_class_kde, pool_locations, pseudo_labels
from geocsp.training.select import balanced_mean

ft = importlib.import_module("geocsp.training.finetune")  # the package re-exports a function of that name
kde_fit = importlib.import_module("geocsp.training.kde")


def location_loglik(kde: ClassKDE, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ls = torch.nn.functional.logsigmoid(kde.log_ratio(torch.tensor(x, dtype=torch.float32)))
    return (ls[torch.arange(len(y)), torch.as_tensor(y)] - torch.logsumexp(ls, 1)).numpy()


def test_leave_one_out_equals_refitting_without_the_row() -> None:
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(-30, 30, 24), rng.uniform(-20, 20, 24)]).astype(np.float32).astype(float)
    lab = np.repeat(np.arange(4), 6)
    pool = np.concatenate([pts, rng.uniform(-40, 40, (20, 2))])
    soft = (rng.uniform(-30, 30, (10, 2)), rng.integers(0, 4, 10), rng.uniform(0.5, 1.0, 10))
    kde = ClassKDE(pts, lab, 4, pool, 1.0, 1.0, math.inf)
    rows = np.arange(24)
    got = _grid_scores(kde, soft, pts, lab, rows, (300.0, 1200.0), (0.1, 1.0), (0.0, 0.5))
    assert len(got) == 8
    for key, score in got.items():
        h, a, gamma = (float(v) for v in key.split("/"))
        direct = []
        for i in rows:  # refit without row i; pseudo-labels enter with weight γ · P(y|I)
            x, y = np.delete(pts, i, 0), np.delete(lab, i)
            w = np.ones(len(y))
            if gamma:
                x, y, w = np.concatenate([x, soft[0]]), np.concatenate([y, soft[1]]), np.concatenate([w, gamma * soft[2]])
            kde_i = ClassKDE(x, y, 4, np.delete(pool, i, 0), h, a, math.inf, w)
            direct.append(location_loglik(kde_i, pts[i : i + 1], lab[i : i + 1])[0])
        assert score == pytest.approx(balanced_mean(np.array(direct), lab), abs=1e-9), key


@pytest.fixture(scope="module")
def calib_world(tmp_path_factory: pytest.TempPathFactory) -> GeoDataset:
    return quadrant_world(tmp_path_factory.mktemp("kde") / "w", calib=True, train_probs=False)


def test_choices_are_the_best_calib_scores(calib_world: GeoDataset) -> None:
    positions = np.arange(0, 64, 2)
    net = torch.nn.Linear(2, 4)
    kde, rec = fit_class_kde(KDEConfig(shrink="cv"), calib_world, positions, 0,
                             lambda x: net(x).detach())
    assert rec["chosen_by"] == "calib" and rec["scored_rows"] == 16 and rec["labelled"] == 32
    best = max(rec["scores"], key=rec["scores"].get)
    assert (kde.bandwidth_km, kde.alpha, 0.0) == tuple(float(v) for v in best.split("/"))
    calib = calib_world.split("calib")
    assert rec["scores"][best] == pytest.approx(balanced_mean(location_loglik(kde.__class__(
        kde.points_lonlat.numpy(), kde.labels.numpy(), 4, kde.pool_lonlat.numpy(), kde.bandwidth_km, kde.alpha,
        math.inf), calib.lonlat, calib.labels), calib.labels), abs=1e-9)
    assert str(rec["shrink"]) == max(rec["shrink_scores"], key=rec["shrink_scores"].get)
    # the pool: every labelled row first, then the other train rows; never calib or val
    pool = pool_locations(calib_world, positions, 10_000, 0)
    train = calib_world.split("train")
    assert np.array_equal(pool[:32], train.lonlat[positions]) and len(pool) == len(train.lonlat)
    assert len(pool_locations(calib_world, positions, 40, 0)) == 40
    assert np.array_equal(pool_locations(calib_world, positions, 10_000, 0, labelled_only=True),
                          train.lonlat[positions])


def test_the_kde_is_fitted_before_val_is_read(calib_world: GeoDataset, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    log: list[str] = []

    def marked(*a: Any, **k: Any) -> Any:
        out = fit_class_kde(*a, **k)
        log.append("KDE")
        return out

    monkeypatch.setattr(ft, "fit_class_kde", marked)
    cfg = resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=cv"])
    m = finetune(cfg, _watched(calib_world, log), tmp_path / "run")
    kde_at = log.index("KDE")
    assert not [e for e in log[:kde_at] if e.startswith("val.")] and "calib.labels" in log[:kde_at]
    assert "val.labels" in log[kde_at:]
    assert m["kde"]["chosen_by"] == "calib" and m["fusion"]["fitted_on"] == "calib"
    prior = load_prior(tmp_path / "run")
    assert prior.kde is not None and prior.kde.bandwidth_km == m["kde"]["bandwidth_km"]


def test_the_kde_alone_without_calib_uses_leave_one_out(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ds = quadrant_world(tmp_path / "w", calib=False, train_probs=False)
    cfg = resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=inf", "data.epochs=0"])
    m = finetune(cfg, ds, tmp_path / "run")
    assert m["kde"]["chosen_by"] == "leave-one-out" and m["kde"]["shrink"] == "inf"
    assert m["location"]["top1"] > 0.9  # four classes in four quarters of the globe


def test_shrink_cv_without_calib_is_refused_before_any_work(tmp_path: Path) -> None:
    ds = quadrant_world(tmp_path / "w", calib=False, train_probs=False)
    cfg = resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=cv"])
    with pytest.raises(ConfigError, match="calib") as e:
        finetune(cfg, ds, tmp_path / "run")
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()


def test_one_row_per_class_and_no_calib_falls_back_to_the_documented_default(tmp_path: Path) -> None:
    ds = quadrant_world(tmp_path / "w", calib=False, train_probs=False)
    positions = np.array([0, 16, 32, 48])  # one row of each class
    kde, rec = fit_class_kde(KDEConfig(shrink=math.inf), ds, positions, 0, None)
    assert rec["chosen_by"] == "default" and rec["scored_rows"] == 0 and kde.alpha == 1.0


def test_epochs_zero_only_for_the_kde_alone() -> None:
    resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=inf", "data.epochs=0"])
    with pytest.raises(ConfigError, match=r"kde\.shrink=inf"):
        resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=3", "data.epochs=0"])


def test_the_kde_field_at_its_default_keeps_earlier_runs_reusable() -> None:
    new = to_dict(resolve_config(FinetuneConfig, overrides=TINY))
    old = {k: v for k, v in new.items() if k != "kde"}  # a run made before the field existed
    ident = {"manifest": "m", "geocsp": "v"}
    assert run_key(ident, new) == run_key(ident, old)
    assert config_dict_for_compare(new) == config_dict_for_compare(old)
    older = {**old, "kde": {"shrink": None, "bandwidth_km": "cv"}}  # saved before later kde fields existed
    assert run_key(ident, older) == run_key(ident, new) and config_dict_for_compare(older) == config_dict_for_compare(new)
    on = to_dict(resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=cv"]))
    assert run_key(ident, on) != run_key(ident, new) and config_dict_for_compare(on) != config_dict_for_compare(old)
    # a KDE run made before kde.class_prior existed keeps its name; a non-default c gets a new one
    alone = to_dict(resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=inf", "data.epochs=0"]))
    before = {**alone, "kde": {k: v for k, v in alone["kde"].items() if k != "class_prior"}}
    assert run_key(ident, before) == run_key(ident, alone)
    assert config_dict_for_compare(before) == config_dict_for_compare(alone)
    cv = {**alone, "kde": {**alone["kde"], "class_prior": "cv"}}
    assert run_key(ident, cv) != run_key(ident, alone) and config_dict_for_compare(cv) != config_dict_for_compare(alone)


def test_a_fused_kde_choice_without_calib_probabilities_is_refused_before_any_work(tmp_path: Path) -> None:
    table = pd.DataFrame({"lon": [0.0, 10.0, 20.0, 30.0], "lat": [0.0, 5.0, 9.0, 3.0], "label": ["a", "b", "a", "b"]})
    root = write_dataset(tmp_path / "d", {"train": SplitData(table), "calib": SplitData(table)}, ["a", "b"])
    for key in ("kde.class_prior=cv", "kde.soft=cv"):
        cfg = resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=inf", "data.epochs=0", key])
        with pytest.raises(DatasetError, match="calib"):
            finetune(cfg, load_dataset(root), tmp_path / "run")
        assert not (tmp_path / "run").exists()


def test_class_prior_cv_is_chosen_by_the_row_mean_fused_score_on_calib(tmp_path: Path) -> None:
    ds = quadrant_world(tmp_path / "w", calib=True, train_probs=True)
    positions = np.concatenate([np.arange(0, 40), np.arange(40, 64, 6)])  # an unbalanced labelled subset
    kde, rec = fit_class_kde(KDEConfig(shrink=math.inf, class_prior="cv"), ds, positions, 0, None, ratio=0.5)
    assert set(rec["class_prior_scores"]) == {"0", "0.5", "1"}
    assert rec["class_prior"] == kde.class_prior == float(max(rec["class_prior_scores"],
                                                                key=rec["class_prior_scores"].get))
    calib = ds.split("calib")
    img = np.array(calib.probs("ratio0.500"))  # a writable copy
    for c, score in rec["class_prior_scores"].items():  # the row mean (not class-balanced) of the fused log-lik
        kde.class_prior = float(c)
        f = torch.log(torch.as_tensor(img, dtype=torch.float64).clamp_min(1e-12)) + torch.nn.functional.logsigmoid(
            kde.log_ratio(torch.tensor(calib.lonlat, dtype=torch.float32)))
        y = torch.as_tensor(calib.labels)
        want = (f[torch.arange(len(y)), y] - torch.logsumexp(f, 1)).mean()
        assert score == pytest.approx(float(want), abs=1e-9)
    plain = fit_class_kde(KDEConfig(shrink=math.inf), ds, positions, 0, None, ratio=0.5)[1]
    assert plain["class_prior"] == 0.0 and plain["class_prior_scores"] == {}
    no_calib = quadrant_world(tmp_path / "nc", calib=False, train_probs=True)
    assert fit_class_kde(KDEConfig(shrink=math.inf, class_prior="cv"), no_calib, positions, 0, None,
                         ratio=0.5)[1]["class_prior"] == 0.0  # no fused score without calib: c = 0


def test_the_kde_methods_are_registered() -> None:
    for name in ("kde", "kde-labelled", "kde-soft", "kde-prior", "sup-wrap-kde", "csp-kde"):
        assert any(o.startswith("kde.shrink=") for o in METHODS.get(name).obj.finetune)


def test_pseudo_labels_come_from_the_runs_classifier_on_unlabelled_rows(tmp_path: Path) -> None:
    ds = quadrant_world(tmp_path / "w", calib=True, train_probs=True)
    labelled = np.arange(0, 64, 2)
    x, y, p = pseudo_labels(ds, labelled, 0.5, 0.4)  # the world stores the λ = 0.5 classifier
    train = ds.split("train")
    probs = np.asarray(train.probs("ratio0.500"))
    rest = np.setdiff1d(np.arange(64), labelled)
    r, c = np.nonzero(probs[rest] >= 0.4)
    assert np.array_equal(x, train.lonlat[rest[r]]) and np.array_equal(y, c)
    np.testing.assert_allclose(p, probs[rest[r], c])
    with pytest.raises(DatasetError, match=r"ratio0\.200"):
        pseudo_labels(ds, labelled, 0.2, 0.4)


def test_soft_cv_chooses_the_pseudo_label_weight_on_calib(tmp_path: Path) -> None:
    ds = quadrant_world(tmp_path / "w", calib=True, train_probs=True)
    kde, rec = fit_class_kde(KDEConfig(shrink=math.inf, soft="cv", soft_min=0.4), ds, np.arange(0, 64, 2), 0,
                             None, ratio=0.5)
    assert {k.split("/")[2] for k in rec["scores"]} == {"0", "0.1", "0.3", "1", "3", "10"}
    assert set(rec["soft_scores"]) == {"0", "0.1", "0.3", "1", "3", "10"}  # the fused score on calib chooses γ
    assert rec["soft"] == float(max(rec["soft_scores"], key=rec["soft_scores"].get))
    # h and α are the best location scores at that γ
    at_gamma = {k: v for k, v in rec["scores"].items() if k.endswith(f"/{rec['soft']:g}")}
    assert f"{rec['bandwidth_km']:g}/{rec['alpha']:g}/{rec['soft']:g}" == max(at_gamma, key=at_gamma.get)
    extra = rec["pseudo_labels"] if rec["soft"] > 0 else 0
    assert len(kde.labels) == 32 + extra and rec["pseudo_labels"] > 0


def test_soft_cv_without_calib_keeps_the_labelled_records_only(tmp_path: Path) -> None:
    ds = quadrant_world(tmp_path / "w", calib=False, train_probs=True)
    kde, rec = fit_class_kde(KDEConfig(shrink=math.inf, soft="cv", soft_min=0.4), ds, np.arange(0, 64, 2), 0,
                             None, ratio=0.5)
    assert rec["chosen_by"] == "leave-one-out" and rec["soft"] == 0.0 and len(kde.labels) == 32


def test_the_choices_score_at_most_a_seeded_sample_of_rows(calib_world: GeoDataset,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kde_fit, "SCORE_MAX_ROWS", 10)
    recs = [fit_class_kde(KDEConfig(shrink=math.inf), calib_world, np.arange(0, 64, 2), 3, None)[1] for _ in range(2)]
    assert recs[0]["scored_rows"] == 10 and recs[0]["scores"] == recs[1]["scores"]


def test_shrink_cv_with_an_unlabelled_calib_split_is_refused_before_any_work(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lonlat = rng.uniform(-50, 50, (20, 2))
    train = SplitData(pd.DataFrame({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "label": ["a", "b"] * 10}))
    calib = SplitData(pd.DataFrame({"lon": lonlat[:5, 0], "lat": lonlat[:5, 1]}))  # no label column
    ds = load_dataset(write_dataset(tmp_path / "w", {"train": train, "calib": calib}, ["a", "b"]))
    cfg = resolve_config(FinetuneConfig, overrides=[*TINY, "kde.shrink=cv"])
    with pytest.raises(ConfigError, match="calib"):
        finetune(cfg, ds, tmp_path / "run")
    assert not (tmp_path / "run").exists()
