"""fit_fusion, its chunked form, stratified folds, the metrics record and evaluate_fused."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.calibration import (
    DEFAULT_FIT_BETAS,
    DEFAULT_FIT_EPSILONS,
    FittedFusion,
    fit_fusion,
    fit_fusion_chunks,
    fusion_grid,
    stratified_folds,
    uncalibrated_info,
)
from geocsp.evaluation.metrics import MetricAccumulator
from geocsp.evaluation.protocol import evaluate_fused, evaluate_scores
from geocsp.prior.fusion import Fusion, calibrated_log_scores

from ._cases import make_case


def ladder_images(rng: np.random.Generator, labels: np.ndarray, q: int, p_right: float):
    """Image probabilities whose log-scores are a permuted ladder with steps of 0.5.

    The true class is on top with probability ``p_right``; any ``beta * |log-prior gap|``
    below 0.5 cannot change a rank.
    """
    n = len(labels)
    logits = np.stack([rng.permutation(q) * 0.5 for _ in range(n)])
    right = rng.random(n) < p_right
    top = logits.argmax(1)
    rows = np.flatnonzero(right)
    # swap the true class with the top class in the rows that are right
    tmp = logits[rows, labels[rows]].copy()
    logits[rows, labels[rows]] = logits[rows, top[rows]]
    logits[rows, top[rows]] = tmp
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def noise_case(seed: int, n: int = 1500, q: int = 10):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, q, n)
    img = ladder_images(rng, labels, q, 0.6)
    loc = rng.uniform(0.05, 1.0, (n, q))  # independent of the labels
    return img, loc, labels, np.ones(n, bool)


def overconfident_case(seed: int = 0, n: int = 1200, q: int = 10):
    """A good image classifier (~80 % top-1) and an informative prior that gives the true
    class exactly 0 in 35 % of the rows (a presence-only prior's over-confidence)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, q, n)
    logits = rng.normal(size=(n, q))
    logits[np.arange(n), labels] += 2.5
    img = np.exp(logits)
    img /= img.sum(1, keepdims=True)
    loc = rng.uniform(0.05, 0.3, (n, q))
    loc[np.arange(n), labels] = rng.uniform(0.5, 1.0, n)
    veto = rng.random(n) < 0.35
    loc[veto, labels[veto]] = 0.0
    return img, loc, labels, np.ones(n, bool)


def test_noise_prior_gives_beta_zero() -> None:
    for seed in range(3):
        fit = fit_fusion(*noise_case(seed))
        assert fit.fusion == Fusion("calibrated", 0.0, 0.0), (seed, fit.fusion)
        best = fit.table[(0.0, 0.0)]["top1"]
        assert fit.table[(2.0, 0.0)]["top1"] < best and fit.paper_top1 < best


def test_informative_prior_gives_beta_above_zero() -> None:
    rng = np.random.default_rng(0)
    n, q = 600, 10
    labels = rng.integers(0, q, n)
    img = rng.dirichlet(np.ones(q), n)
    loc = rng.uniform(0.2, 0.4, (n, q))
    loc[np.arange(n), labels] = 0.6
    fit = fit_fusion(img, loc, labels, np.ones(n, bool))
    assert fit.fusion.beta > 0 and fit.fusion.kind == "calibrated"
    assert fit.table[(fit.fusion.beta, fit.fusion.eps)]["top1"] > fit.image_only_top1 + 0.2
    assert not fit.hurts and fit.warning() is None


def test_overconfident_prior_hurts_and_eps_repairs_it() -> None:
    fit = fit_fusion(*overconfident_case())
    assert fit.hurts and fit.paper_top1 < fit.image_only_top1
    chosen = fit.table[(fit.fusion.beta, fit.fusion.eps)]["top1"]
    assert fit.fusion.eps > 0 and chosen > fit.image_only_top1 > fit.paper_top1
    line = fit.warning()
    assert line is not None and "\n" not in line and "beta=1" in line
    assert f"beta={fit.fusion.beta:g}, eps={fit.fusion.eps:g}" in line


@pytest.mark.parametrize("seed", range(8))
def test_never_below_image_only_on_fitting_rows(seed: int) -> None:
    img, loc, labels, has = make_case(seed, n=200, q=12)
    loc = loc.copy()
    rng = np.random.default_rng(seed)
    loc[has] = rng.random((int(has.sum()), 12)) ** rng.uniform(1, 8)  # noise of any sharpness
    fit = fit_fusion(img, loc, labels, has, batch_size=64)
    assert fit.table[(fit.fusion.beta, fit.fusion.eps)]["top1"] >= fit.image_only_top1
    by_nll = fit_fusion(img, loc, labels, has, criterion="nll", batch_size=64)
    assert by_nll.table[(by_nll.fusion.beta, by_nll.fusion.eps)]["nll"] <= by_nll.table[(0.0, 0.0)]["nll"]


def test_hand_computed_table() -> None:
    img = torch.tensor([[0.5, 0.5], [0.8, 0.2]], dtype=torch.float64)
    loc = torch.tensor([[0.2, 0.6], [0.1, 0.9]], dtype=torch.float64)
    fit = fit_fusion(img, loc, torch.tensor([1, 1]), torch.tensor([True, True]),
                     betas=(1.0,), epsilons=(0.5,))
    assert list(fit.table) == [(0.0, 0.0), (1.0, 0.0), (1.0, 0.5)]
    # image only: row 0 ties (the lower index is ahead), row 1 wrong: ranks 2, 2
    assert fit.table[(0.0, 0.0)] == pytest.approx(
        {"top1": 0.0, "mrr": 0.5, "nll": (-math.log(0.5) - math.log(0.2)) / 2})
    # product: 0.1 < 0.3 and 0.08 < 0.18: both right
    assert fit.table[(1.0, 0.0)] == pytest.approx(
        {"top1": 1.0, "mrr": 1.0, "nll": (-math.log(0.3 / 0.4) - math.log(0.18 / 0.26)) / 2})
    # eps = 0.5: priors 0.6 / 0.8 and 0.55 / 0.95 -> 0.3 < 0.4 right, 0.44 > 0.19 wrong
    assert fit.table[(1.0, 0.5)] == pytest.approx(
        {"top1": 0.5, "mrr": 0.75, "nll": (-math.log(0.4 / 0.7) - math.log(0.19 / 0.63)) / 2})
    assert fit.fusion == Fusion("calibrated", 1.0, 0.0)
    assert (fit.n, fit.image_only_top1, fit.paper_top1, fit.hurts) == (2, 0.0, 1.0, False)


def test_ties_prefer_the_image_then_the_weaker_prior() -> None:
    img = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
    loc = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    fit = fit_fusion(img, loc, torch.tensor([1]), torch.tensor([True]), betas=(1.0,), epsilons=(0.5,))
    # paper: 0.27 > 0.07, wrong; eps = 0.5: 0.285 < 0.385, right, but beta = 0 ties and wins
    assert fit.hurts and fit.table[(1.0, 0.5)]["top1"] == 1.0
    assert fit.fusion == Fusion("calibrated", 0.0, 0.0)
    img2 = torch.tensor([[0.45, 0.55]], dtype=torch.float64)
    loc2 = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    fit2 = fit_fusion(img2, loc2, torch.tensor([0]), torch.tensor([True]), betas=(1.0,),
                      epsilons=(0.0, 0.5, 1.0))
    # image and eps = 1 wrong; eps 0 (0.405 > 0.055) and eps 0.5 (0.4275 > 0.3025) right: the
    # larger eps (the weaker prior) wins the tie
    assert [fit2.table[(1.0, e)]["top1"] for e in (0.0, 0.5, 1.0)] == [1.0, 1.0, 0.0]
    assert fit2.fusion == Fusion("calibrated", 1.0, 0.5)
    fit3 = fit_fusion(img, loc, torch.tensor([1]), torch.tensor([True]), betas=(0.5,),
                      epsilons=(0.0, 0.5, 1.0))
    # beta = 0.5: eps 1 (flat prior) and the image tie on every metric; beta 0 wins over eps 1
    assert fit3.fusion.beta == 0.0


def test_no_locations_and_json() -> None:
    img, loc, labels, _ = make_case(4)
    fit = fit_fusion(img, loc, labels, np.zeros(len(labels), bool))
    assert fit.fusion == Fusion("calibrated", 0.0, 0.0) and not fit.hurts
    d = json.loads(json.dumps(fit.to_dict()))
    assert Fusion.from_dict(d["fusion"]) == fit.fusion
    assert len(d["table"]) == len(fusion_grid()) and set(d["table"][0]) == {"beta", "eps", "top1", "mrr", "nll"}
    assert "table" not in fit.to_dict(table=False)


def test_grid_and_errors() -> None:
    grid = fusion_grid()
    assert len(grid) == 1 + (len(DEFAULT_FIT_BETAS) - 1) * len(DEFAULT_FIT_EPSILONS)
    assert grid == sorted(grid) and (0.0, 0.0) in grid and (1.0, 0.0) in grid
    img, loc, labels, has = make_case(5, n=20)
    with pytest.raises(ConfigError, match=r"criterion: expected one of \['top1', 'nll'\], got 'acc'"):
        fit_fusion(img, loc, labels, has, criterion="acc")
    with pytest.raises(ConfigError, match="betas, epsilons: expected at least one value"):
        fit_fusion(img, loc, labels, has, epsilons=())
    with pytest.raises(ConfigError, match="beta: expected a finite value >= 0"):
        fit_fusion(img, loc, labels, has, betas=(-1.0,))
    with pytest.raises(DatasetError, match="labels: expected at least one row"):
        fit_fusion(img[:0], loc[:0], labels[:0], has[:0])
    with pytest.raises(DatasetError, match="labels: value 20 outside"):
        fit_fusion(img, loc, np.full(20, 20), has)
    with pytest.raises(DatasetError, match="labels: expected at least one row"):
        fit_fusion_chunks([])


# --- chunks, folds and the metrics record -------------------------------------------------


def test_chunked_fit_is_the_fit_of_the_concatenation() -> None:
    img, loc, labels, has = overconfident_case(3, n=500)
    has[::9] = False
    whole = fit_fusion(img, loc, labels, has, batch_size=64)
    cuts = [0, 7, 180, 181, 500]
    parts = [(img[a:b], loc[a:b], labels[a:b], has[a:b]) for a, b in itertools.pairwise(cuts)]
    chunked = fit_fusion_chunks(iter(parts), batch_size=64)
    assert chunked.fusion == whole.fusion and chunked.n == whole.n == 500
    for pt, row in whole.table.items():
        assert chunked.table[pt] == pytest.approx(row, rel=1e-12)


def test_stratified_folds() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 103)
    labels[:3] = 9  # a class with fewer rows than folds
    f = stratified_folds(labels, 5, seed=3)
    assert f.dtype == np.int64 and set(f.tolist()) == set(range(5))
    assert sorted(np.bincount(f, minlength=5).tolist()) == [20, 20, 21, 21, 21]  # sizes differ by <= 1
    for c in np.unique(labels):  # every class spread as evenly as its size allows
        counts = np.bincount(f[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(f, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(f, stratified_folds(labels, 5, seed=4))
    with pytest.raises(ConfigError, match=r"k: expected 2 <= k <= 3 \(the number of rows\), got 4"):
        stratified_folds(labels[:3], 4)


def test_fitted_and_uncalibrated_records_share_one_schema() -> None:
    fit = fit_fusion(*overconfident_case(4, n=300))
    rec = FittedFusion.from_fit(fit, "crossfit-train-k3", crossfit={"k": 3})
    info = json.loads(json.dumps(rec.info(1.0)))
    assert info["fitted_on"] == "crossfit-train-k3" and info["calib_rows"] == 300 and info["why"] is None
    assert Fusion.from_dict(info["calibrated"]) == fit.fusion and info["paper"] == {"beta": 1.0}
    assert info["hurts"] is True and "(crossfit-train-k3)" in info["warning"] and info["crossfit"] == {"k": 3}
    none = uncalibrated_info(0.5, "no calibrated fusion: needs a calib split")
    assert set(none) == set(info) - {"crossfit"}
    assert none["calibrated"] is None and none["fitted_on"] is None and none["why"].startswith("no calibrated")
    assert none["paper"] == {"beta": 0.5} and none["warning"] is None and none["hurts"] is None


# --- evaluate_fused ------------------------------------------------------------------------


def test_evaluate_fused_blocks() -> None:
    img, loc, labels, has = make_case(6)
    cal = Fusion("calibrated", 0.3, 0.05)
    got = evaluate_fused(img, loc, labels, has,
                         {"fused-paper": Fusion("paper"), "fused-calibrated": cal}, batch_size=40)
    assert list(got) == ["image", "location", "fused-paper", "fused-calibrated"]
    ref = evaluate_scores(img, loc, labels, has, batch_size=40)
    assert got["image"] == ref["image"] and got["location"] == ref["location"]
    assert got["fused-paper"] == ref["fused"]  # bit-identical to the existing protocol
    acc = MetricAccumulator()
    acc.update(calibrated_log_scores(torch.tensor(img), torch.tensor(loc), torch.tensor(has),
                                     0.3, 0.05), torch.tensor(labels), log_space=True)
    assert got["fused-calibrated"] == pytest.approx(acc.compute(), rel=1e-12)
    half = evaluate_scores(img, loc, labels, has, beta=0.5, batch_size=40)
    assert evaluate_fused(img, loc, labels, has, {"fused": Fusion("paper", 0.5)},
                          batch_size=40) == half
    with pytest.raises(ConfigError, match="fusions: name 'image' is reserved"):
        evaluate_fused(img, loc, labels, has, {"image": cal})
