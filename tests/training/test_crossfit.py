"""Where the calibrated fusion is fitted: calib split, labelled-subset cross-fit, or nowhere.

A hand-written 4-class dataset (each class lives in its own quarter of the globe) and tiny
1-epoch priors keep every test to seconds. The reported split (``val``) is watched: every
read of its rows is logged, and the tests assert that none happens before the fusion is
fixed.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import geocsp.training.crossfit as cf
from geocsp.checkpoints import load_prior
from geocsp.config import load_yaml
from geocsp.data import GeoDataset, Split, load_dataset
from geocsp.data.writer import SplitData, write_dataset
from geocsp.errors import ConfigError
from geocsp.evaluation.calibration import FittedFusion
from geocsp.training import EvaluateConfig, FinetuneConfig, finetune, resolve_config
from geocsp.training.inference import location_probs

ev = importlib.import_module("geocsp.training.evaluate")  # the package re-exports a function of that name
CLASSES = ["a", "b", "c", "d"]
CENTRES = np.array([[-120.0, 40.0], [-60.0, -20.0], [30.0, 45.0], [120.0, -30.0]])
KEY = "ratio0.500"
TINY = ["device=cpu", "quiet=true", "model.dim=16", "model.network_args.hidden_dim=32",
        "model.encoder_args.num_scales=4", "data.batch_size=16", "data.epochs=1", "ratio=0.5"]


def _split(rng: np.random.Generator, per_class: int, probs: bool, default_too: bool = False) -> SplitData:
    """Rows around each class centre; image probabilities right ~60 % of the time."""
    y = np.repeat(np.arange(len(CLASSES)), per_class)
    lonlat = CENTRES[y] + rng.normal(0, 8, (len(y), 2))
    table = pd.DataFrame({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "label": [CLASSES[i] for i in y]})
    logits = rng.normal(0, 1, (len(y), len(CLASSES)))
    logits[np.arange(len(y)), y] += 0.8
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sets = {KEY: p.astype(np.float32)} if probs else {}
    if default_too:  # another classifier: the cross-fit must use the run's key, not this one
        sets["default"] = np.roll(p, 1, axis=1).astype(np.float32)
    return SplitData(table, probs=sets)


def _world(root: Path, *, calib: bool, train_probs: bool) -> GeoDataset:
    rng = np.random.default_rng(0)
    splits = {"train": _split(rng, 16, train_probs, default_too=train_probs),
              "val": _split(rng, 6, True)}
    if calib:
        splits["calib"] = _split(rng, 4, True)
    return load_dataset(write_dataset(root, splits, CLASSES))


@pytest.fixture(scope="module")
def cfg() -> FinetuneConfig:
    return resolve_config(FinetuneConfig, overrides=TINY)


@pytest.fixture(scope="module")
def world_train(tmp_path_factory: pytest.TempPathFactory) -> GeoDataset:
    """No calib split; train stores image probabilities (the cross-fit case)."""
    return _world(tmp_path_factory.mktemp("w") / "train-probs", calib=False, train_probs=True)


@pytest.fixture(scope="module")
def run(world_train: GeoDataset, cfg: FinetuneConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fine-tuning run whose labelled subset is cross-fitted."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "ft"
    finetune(cfg, world_train, out)
    return out


ECFG = EvaluateConfig(device="cpu", crossfit_folds=3)
WATCHED = frozenset({"labels", "lonlat", "has_location", "table", "features", "probs"})


class WatchedSplit(Split):
    """A split that logs every read of its rows (``prob_keys``, the stored key names, is not a row read)."""

    def __getattribute__(self, name: str) -> Any:
        if name in WATCHED:
            object.__getattribute__(self, "log").append(f"{object.__getattribute__(self, 'name')}.{name}")
        return object.__getattribute__(self, name)


def _watched(ds: GeoDataset, log: list[str]) -> GeoDataset:
    splits = {}
    for name in ds.split_names:
        w = WatchedSplit.__new__(WatchedSplit)
        w.__dict__.update(ds.split(name).__dict__)
        w.log = log  # type: ignore[attr-defined]
        splits[name] = w
    return GeoDataset(ds.root, ds.manifest, splits)


def logged(fn: Callable[..., Any], log: list[str], mark: str = "FIT") -> Callable[..., Any]:
    """``fn`` that appends ``mark`` to ``log`` when it returns (to order it among the data reads)."""
    def wrapped(*a: Any, **k: Any) -> Any:
        out = fn(*a, **k)
        log.append(mark)
        return out
    return wrapped


def _mark_fits(monkeypatch: pytest.MonkeyPatch, log: list[str]) -> None:
    """Log ``FIT`` when a fusion fit (or β tuning) returns."""
    monkeypatch.setattr(ev, "fit_fusion", logged(ev.fit_fusion, log))
    monkeypatch.setattr(ev, "tune_beta", logged(ev.tune_beta, log))
    monkeypatch.setattr(cf, "fit_fusion_chunks", logged(cf.fit_fusion_chunks, log))


def reads_before_fit(log: list[str], split: str) -> list[str]:
    """Reads of ``split``'s rows logged before the last fit ended (all of them if none ended)."""
    end = max((i for i, e in enumerate(log) if e == "FIT"), default=len(log))
    return [e for e in log[:end] if e.startswith(split + ".")]


def _no_refit(*_a: Any, **_k: Any) -> None:
    pytest.fail("refitted a prior although the fusion had another source")


def _model(run: Path) -> tuple[Any, Any]:
    prior = load_prior(run)
    return prior.logits, prior


# --- the three sources ---------------------------------------------------------------------


def test_calib_split_is_used_when_it_exists(run: Path, cfg: FinetuneConfig, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    ds = _watched(_world(tmp_path / "calib", calib=True, train_probs=True), log)
    _mark_fits(monkeypatch, log)
    src = ev.fusion_source(ds, ECFG, 0.5, run_dir=run, config=cfg, refit=_no_refit)
    assert isinstance(src, Split) and src.name == "calib"
    m = ev.evaluate_split(*_model(run), ds.split("val"), 4, ECFG, 0.5, src)
    assert m["fusion"]["fitted_on"] == "calib" and m["fusion"]["calib_rows"] == 16 and m["fusion"]["why"] is None
    assert m["fused_calibrated"]["n"] == m["fused"]["n"] == 24 and m["probs_key"] == KEY
    assert log.count("FIT") == 1 and "calib.labels" in log and "train.labels" not in log
    assert reads_before_fit(log, "val") == [] and "val.labels" in log  # val is read, but only afterwards


def test_crossfit_on_the_labelled_subset_when_only_train_probs_exist(
        run: Path, world_train: GeoDataset, cfg: FinetuneConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    ds = _watched(world_train, log)
    seen: list[tuple[FinetuneConfig, list[str], Path]] = []
    located: dict[str, np.ndarray] = {}
    chunks: list[tuple[Any, ...]] = []

    def refit(c: FinetuneConfig, d: GeoDataset, out: Path) -> Any:
        seen.append((c, d.split_names, out))
        located[out.name] = d.split("train").has_location.copy()
        assert reads_before_fit(log, "val") == []
        return finetune(c, d, out)

    fit_chunks = cf.fit_fusion_chunks

    def record(it: Any, **kw: Any) -> Any:
        return fit_chunks([chunks.append(tuple(np.asarray(a) for a in c)) or c for c in it], **kw)

    monkeypatch.setattr(cf, "fit_fusion_chunks", record)
    _mark_fits(monkeypatch, log)
    src = ev.fusion_source(ds, ECFG, 0.5, run_dir=run, config=cfg, refit=refit)
    assert isinstance(src, FittedFusion) and src.fitted_on == "crossfit-train-k3"
    assert reads_before_fit(log, "val") == [] and not any(e.startswith("val.") for e in log)
    # K fold runs: the run's config with only the subset replaced, on a train-only dataset
    assert len(seen) == 3 and all(names == ["train"] for _, names, _ in seen)
    for c, _, out in seen:
        assert dataclasses.replace(c, subset=None, subset_sha256=None) == cfg
        saved = load_yaml(out / "config.yaml")
        parent = load_yaml(run / "config.yaml")
        assert {k: v for k, v in saved.items() if not k.startswith("subset")} == \
               {k: v for k, v in parent.items() if not k.startswith("subset")}
    # the fit saw out-of-fold P(y|x), the train rows' labels and their probabilities under the run's key
    plan = cf.load_plan(run, world_train.split("train"))
    assert plan is not None and src.n == len(plan.rows)
    train = world_train.split("train")
    lo = 0
    for f in range(3):
        held = plan.held_out(f)
        img, loc, labels, has = chunks[f]
        np.testing.assert_array_equal(labels, train.labels[held])
        np.testing.assert_array_equal(img, train.probs(KEY)[held])
        prior = load_prior(plan.fold_dir(f))
        ref = location_probs(prior.logits, prior, train.lonlat[held], has, 4, 64, torch.device("cpu"))
        np.testing.assert_allclose(loc, ref, rtol=1e-6)
        fold_rows = np.load(plan.subset_file(f))
        assert np.intersect1d(fold_rows, held).size == 0  # never trained on what it scores
        hidden = np.flatnonzero(~located[f"fold{f}"])  # nor sees where those rows are
        np.testing.assert_array_equal(hidden, np.sort(held))
        lo += len(held)
    assert lo == src.n
    m = ev.evaluate_split(*_model(run), ds.split("val"), 4, ECFG, 0.5, src)
    f_info = m["fusion"]
    assert f_info["fitted_on"] == "crossfit-train-k3" and f_info["crossfit"]["k"] == 3
    assert sum(f_info["crossfit"]["fold_rows"]) == src.n == f_info["calib_rows"] and f_info["why"] is None
    assert f_info["crossfit"]["probs_key"] == KEY and m["fused_calibrated"]["n"] == 24


def test_evaluate_reuses_the_runs_crossfit_and_never_reads_val_first(
        run: Path, world_train: GeoDataset, cfg: FinetuneConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ev.fusion_source(world_train, ECFG, 0.5, run_dir=run, config=cfg, refit=finetune)  # trained (or kept)
    log: list[str] = []
    _mark_fits(monkeypatch, log)
    m = ev.evaluate(run, _watched(world_train, log), device="cpu", out=tmp_path / "e.json")
    assert reads_before_fit(log, "val") == [] and "val.labels" in log
    assert isinstance(first, FittedFusion) and m["fusion"]["calibrated"] == first.fusion.to_dict()
    assert m["fusion"]["fitted_on"] == "crossfit-train-k3"


def test_neither_gives_no_calibrated_number_and_one_line_why(cfg: FinetuneConfig, tmp_path: Path) -> None:
    ds = _world(tmp_path / "bare", calib=False, train_probs=False)
    src = ev.fusion_source(ds, ECFG, 0.5, run_dir=tmp_path / "nope", config=cfg, refit=_no_refit)
    assert isinstance(src, ev.NoCalibration)
    run = tmp_path / "ft"
    m = finetune(cfg, ds, run)  # today's fine-tuning reports no calibration either way here
    e = ev.evaluate(run, ds, device="cpu", out=tmp_path / "e.json")
    for got in (m, e):
        f = got["fusion"]
        assert got["fused_calibrated"] is None and f["calibrated"] is None and f["fitted_on"] is None
        assert f["why"].startswith("no calibrated fusion: it needs a calib split or image probabilities")
        assert "\n" not in f["why"] and f["warning"] is None and got["fused"]["n"] == 24
    assert f"'{KEY}' for the train split" in e["fusion"]["why"]


def test_finetune_crossfits_only_when_asked(world_train: GeoDataset, cfg: FinetuneConfig, tmp_path: Path) -> None:
    """Default (crossfit_folds 0): no fold runs, no calibrated number, the reason; K=2: fitted on the subset."""
    off = finetune(cfg, world_train, tmp_path / "off")
    assert not (tmp_path / "off" / cf.CROSSFIT_DIR).exists() and off["fused_calibrated"] is None
    assert "no complete cross-fit" in off["fusion"]["why"]
    on = finetune(dataclasses.replace(cfg, crossfit_folds=2), world_train, tmp_path / "on")
    assert on["fusion"]["fitted_on"] == "crossfit-train-k2" and on["fused_calibrated"]["n"] == 24
    assert all((tmp_path / "on" / cf.CROSSFIT_DIR / f"fold{f}" / "metrics.json").is_file() for f in range(2))
    again = ev.evaluate(tmp_path / "on", world_train, device="cpu", out=tmp_path / "e.json")
    assert again["fusion"]["calibrated"] == on["fusion"]["calibrated"]  # evaluate reuses the fold priors


def test_crossfit_folds_must_be_off_or_at_least_two() -> None:
    with pytest.raises(ConfigError, match="crossfit_folds must be 0"):
        FinetuneConfig(crossfit_folds=1)


def test_evaluate_without_a_finished_crossfit_says_so(world_train: GeoDataset, cfg: FinetuneConfig,
                                                      tmp_path: Path) -> None:
    run = tmp_path / "ft"
    finetune(cfg, world_train, run)
    assert not (run / cf.CROSSFIT_DIR).exists()  # fine-tuning cross-fits only when asked
    e = ev.evaluate(run, world_train, device="cpu", out=tmp_path / "e.json")
    assert e["fused_calibrated"] is None and "has no complete cross-fit" in e["fusion"]["why"]


def test_the_watch_catches_a_leaky_fit(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The assertion above can fail: a fit that peeks at the reported split is caught."""
    log: list[str] = []
    ds = _watched(_world(tmp_path / "calib", calib=True, train_probs=False), log)
    fit = ev.fit_fusion

    def leaky(*a: Any, **k: Any) -> Any:
        ds.split("val").labels  # noqa: B018  # a fit that reads the reported labels
        return fit(*a, **k)

    monkeypatch.setattr(ev, "fit_fusion", leaky)
    _mark_fits(monkeypatch, log)
    ev.evaluate_split(*_model(run), ds.split("val"), 4, ECFG, 0.5, ds.split("calib"))
    assert reads_before_fit(log, "val") == ["val.labels"]


# --- folds ---------------------------------------------------------------------------------


def test_folds_are_disjoint_cover_the_subset_and_are_seeded(run: Path, world_train: GeoDataset,
                                                            cfg: FinetuneConfig, tmp_path: Path) -> None:
    train = world_train.split("train")
    subset = cf.subset_rows(run, train, cfg)
    saved = np.load(run / "subset" / "ratio0.500_seed0.npy")
    usable = np.flatnonzero(train.labels >= 0)
    np.testing.assert_array_equal(subset, usable[saved])  # the rows the run trained on
    plan = cf.plan_folds(run, train, cfg, 3)
    np.testing.assert_array_equal(np.sort(plan.rows), subset)
    held = [plan.held_out(f) for f in range(3)]
    assert sum(len(h) for h in held) == len(subset) and np.array_equal(np.sort(np.concatenate(held)), subset)
    for f in range(3):
        np.testing.assert_array_equal(np.load(plan.subset_file(f)), np.setdiff1d(subset, held[f]))
    per_class = np.array([np.bincount(train.labels[h], minlength=4) for h in held])  # stratified
    assert (per_class.max(0) - per_class.min(0) <= 1).all()
    again = cf.plan_folds(run, train, cfg, 3)
    assert np.array_equal(again.folds, plan.folds)
    other = cf.plan_folds(tmp_path / "r1", train, dataclasses.replace(cfg, seed=1), 3)
    assert not np.array_equal(other.rows, plan.rows) or not np.array_equal(other.folds, plan.folds)


def test_crossfit_is_deterministic(world_train: GeoDataset, cfg: FinetuneConfig, tmp_path: Path) -> None:
    fits = []
    for name in ("a", "b"):
        run = tmp_path / name
        finetune(cfg, world_train, run)
        fits.append(cf.crossfit_fusion(finetune, cfg, world_train, run, KEY, k=2, device="cpu"))
    a, b = fits
    assert (a.fusion, a.n, a.image_only_top1, a.paper_top1, a.details) == \
           (b.fusion, b.n, b.image_only_top1, b.paper_top1, b.details)
    assert a.fitted_on == "crossfit-train-k2"
    pa, pb = cf.load_plan(tmp_path / "a", world_train.split("train")), cf.load_plan(tmp_path / "b", world_train.split("train"))
    assert pa is not None and pb is not None and np.array_equal(pa.folds, pb.folds)
    for f in range(2):
        wa = load_prior(pa.fold_dir(f)).classifier.weight
        assert torch.equal(wa, load_prior(pb.fold_dir(f)).classifier.weight)


def test_a_changed_config_replans_and_missing_probs_fail_before_training(
        world_train: GeoDataset, cfg: FinetuneConfig, run: Path, tmp_path: Path) -> None:
    from geocsp.errors import DatasetError

    with pytest.raises(DatasetError, match=r"split 'train' has no image probabilities 'ratio0.100' to cross-fit"):
        cf.crossfit_fusion(_no_refit, cfg, world_train, run, "ratio0.100", k=3)
    train = world_train.split("train")
    d = tmp_path / "r"
    cf.plan_folds(d, train, cfg, 3)
    (d / cf.CROSSFIT_DIR / "fold0").mkdir()
    cf.plan_folds(d, train, cfg, 3)
    assert (d / cf.CROSSFIT_DIR / "fold0").is_dir()  # same plan: kept (resumable)
    cf.plan_folds(d, train, cfg, 2)
    assert not (d / cf.CROSSFIT_DIR / "fold0").exists() and not (d / cf.CROSSFIT_DIR / "fold2-train.npy").exists()
    big = cf.plan_folds(tmp_path / "r2", train, cfg, 1000)  # more folds than rows: one row per fold
    assert big.k == len(big.rows) == 32 and big.sizes() == [1] * 32
