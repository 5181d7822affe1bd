"""evaluate against independent float64 NumPy computations."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from geocsp.checkpoints import load_prior
from geocsp.errors import ConfigError, DatasetError
from geocsp.training import FinetuneConfig, evaluate, resolve_config


def test_evaluate_matches_numpy_metrics(numpy_loc_probs, dataset, ft_run: Path) -> None:
    m = evaluate(ft_run, dataset)
    # its own file, named after split, dataset and probability set (never metrics.json)
    assert m == json.loads((ft_run / f"eval-val-{dataset.root.name}-ratio0.100.json").read_text())
    assert m["probs_key"] == "ratio0.100"
    val = dataset.split("val")
    rows = np.flatnonzero(val.labels >= 0)
    img = val.probs("ratio0.100")[rows].astype(np.float64)
    has = val.has_location[rows]
    loc = np.ones_like(img)
    loc[has] = numpy_loc_probs(ft_run, val.lonlat[rows][has])
    y = val.labels[rows]
    fused = img * loc
    top1 = float(np.mean(fused.argmax(1) == y))
    rank = 1 + (fused > fused[np.arange(len(y)), y][:, None]).sum(1)
    assert m["fused"]["top1"] == pytest.approx(top1, abs=1.5 / len(y))
    assert m["fused"]["mrr"] == pytest.approx(np.mean(1.0 / rank), abs=1e-3)
    loc_top1 = float(np.mean(loc[has].argmax(1) == y[has]))
    assert m["location"]["top1"] == pytest.approx(loc_top1, abs=1.5 / has.sum())
    assert m["location"]["n"] == int(has.sum()) and m["image"]["n"] == len(y)


@pytest.fixture(scope="module")
def calib_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small GeoWorld (seed 0) with a held-out ``calib`` split (3 rows per class)."""
    from geocsp.data import make_world

    return make_world("small", seed=0, calib_per_class=3, out=tmp_path_factory.mktemp("cw") / "small-calib")


def test_evaluate_beta_tune_and_other_split_file(calib_world: Path, ft_run: Path) -> None:
    # issue 15: beta=tune tunes on a calib split only (this test used the calib-less small world before)
    m = evaluate(ft_run, calib_world, split="val", probs_key="default", beta="tune")
    assert m["probs_key"] == "default" and m["beta"] in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    assert m["fusion"]["fitted_on"] == "calib" and m["fusion"]["paper"] == {"beta": m["beta"]}
    with pytest.raises(DatasetError, match=r"has no (image )?probabilities 'nope'"):
        evaluate(ft_run, calib_world, probs_key="nope")


def test_beta_tune_without_calib_split_is_refused(dataset, ft_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^beta=tune needs a calib split \('calib' is not in the dataset\); "
                                          r"use the calibrated fusion reported as fused_calibrated instead$"):
        evaluate(ft_run, dataset, beta="tune", out=tmp_path / "e.json")
    assert not (tmp_path / "e.json").exists()


def test_calibrated_fusion_is_fitted_on_calib_rows_only(calib_world: Path, ft_run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a calib split, fit_fusion and tune_beta see exactly its rows, never val's."""
    from geocsp.data import load_dataset

    ev = importlib.import_module("geocsp.training.evaluate")  # the package re-exports a function of that name

    seen: list[tuple[str, np.ndarray, np.ndarray]] = []

    def spy(name: str, fn):
        def wrapped(img, loc, labels, has, **kw):
            seen.append((name, np.asarray(img, dtype=np.float64), np.asarray(labels)))
            return fn(img, loc, labels, has, **kw)
        return wrapped

    monkeypatch.setattr(ev, "fit_fusion", spy("fit", ev.fit_fusion))
    monkeypatch.setattr(ev, "tune_beta", spy("tune", ev.tune_beta))
    monkeypatch.setattr(ev, "crossfit_fusion", lambda *a, **k: pytest.fail("cross-fitted despite a calib split"))
    m = evaluate(ft_run, calib_world, beta="tune", out=tmp_path / "e.json")
    ds = load_dataset(calib_world)
    cal, val = ds.split("calib"), ds.split("val")
    rows = np.flatnonzero(cal.labels >= 0)
    assert [name for name, _, _ in seen] == ["fit", "tune"]
    for _, img, labels in seen:
        np.testing.assert_array_equal(labels, cal.labels[rows])
        np.testing.assert_array_equal(img, cal.probs(m["probs_key"])[rows].astype(np.float64))
        assert len(labels) != int((val.labels >= 0).sum())
    f = m["fusion"]
    assert f["fitted_on"] == "calib" and f["calib_rows"] == len(rows) == m["fusion"]["calib_rows"]
    assert f["calibrated"]["kind"] == "calibrated" and f["hurts"] == (f["paper_top1_calib"] < f["image_only_top1_calib"])
    assert set(m["fused_calibrated"]) == set(m["fused"]) and m["fused_calibrated"]["n"] == m["fused"]["n"]


def test_without_calib_the_reported_split_is_never_cross_fitted(dataset, ft_run: Path, tmp_path: Path) -> None:
    """No calib split: the fusion comes from the run's labelled-subset cross-fit, or there is none."""
    m = evaluate(ft_run, dataset, out=tmp_path / "e.json")
    f = m["fusion"]
    ref = json.loads((ft_run / "metrics.json").read_text())  # finetune wrote the same evaluation
    assert ref["fused"] == m["fused"] and ref["fusion"]["fitted_on"] == f["fitted_on"]
    if f["fitted_on"] is None:  # train split without probabilities, or a run without its cross-fit
        assert m["fused_calibrated"] is None and f["calibrated"] is None and f["calib_rows"] == 0
        assert f["why"].startswith("no calibrated fusion: ") and "\n" not in f["why"]
    else:
        assert re.fullmatch(r"crossfit-train-k\d+", f["fitted_on"]) and f["why"] is None
        assert m["fused_calibrated"]["n"] == m["fused"]["n"] and f["calib_rows"] == sum(f["crossfit"]["fold_rows"])


def test_hurts_line_and_echo(capsys: pytest.CaptureFixture[str]) -> None:
    from geocsp.cli.options import echo_metrics
    from geocsp.evaluation.calibration import hurts_warning as hurts_line
    from geocsp.prior.fusion import Fusion

    fusion = Fusion("calibrated", 0.02, 0.01)
    assert hurts_line(0.6, 0.6, 10, fusion, "calib") is None
    line = hurts_line(0.6, 0.3, 10, fusion, "calib")
    assert line is not None and "\n" not in line and "0.6000" in line and "beta=0.02" in line
    block = {"top1": 0.5, "top5": 0.9, "mrr": 0.6, "n": 10}
    echo_metrics({"image": block, "location": block, "fused": block, "fused_calibrated": block,
                  "fusion": {"warning": line}})
    out, err = capsys.readouterr()
    assert "fused_cal top1 0.5000" in out and err.count("\n") == 1 and "warning: the paper's fusion" in err
    echo_metrics({"image": block, "fused": block, "fusion": {"warning": None}})
    assert capsys.readouterr().err == ""


def test_evaluate_never_replaces_metrics_or_an_earlier_file(dataset, ft_run: Path, tmp_path: Path) -> None:
    from geocsp.errors import ConfigError

    before = (ft_run / "metrics.json").read_bytes()
    out = tmp_path / "e.json"
    m = evaluate(ft_run, dataset, probs_key="default", out=out)
    assert json.loads(out.read_text()) == m and (ft_run / "metrics.json").read_bytes() == before
    out.write_text("{}")
    with pytest.raises(ConfigError, match=r"e.json: exists; pass --overwrite"):
        evaluate(ft_run, dataset, probs_key="default", out=out)
    assert out.read_text() == "{}"
    evaluate(ft_run, dataset, probs_key="default", out=out, overwrite=True)
    assert json.loads(out.read_text()) == m
    named = ft_run / f"eval-val-{dataset.root.name}-default.json"
    evaluate(ft_run, dataset, probs_key="default", beta=0.5, overwrite=True)
    assert json.loads(named.read_text())["beta"] == 0.5
    with pytest.raises(ConfigError, match=re.escape(f"{named}: exists")):
        evaluate(ft_run, dataset, probs_key="default")
    assert (ft_run / "metrics.json").read_bytes() == before


def _relabelled(dataset, tmp_path: Path, classes: list[str]) -> Path:
    """A copy of the val split with another class list (labels mapped by index)."""
    from geocsp.data.dataset import SplitData, write_dataset

    val = dataset.split("val")
    table = val.table[["lon", "lat"]].copy()
    labels = np.where(val.labels >= 0, val.labels, 0) % len(classes)
    table["label"] = [classes[i] for i in labels]
    return write_dataset(tmp_path / "world2", {"val": SplitData(table)}, classes)


def test_evaluate_and_predict_refuse_other_classes(dataset, ft_run: Path, tmp_path: Path) -> None:
    from geocsp.training import predict

    q = len(dataset.classes)
    fewer = _relabelled(dataset, tmp_path / "a", dataset.classes[: q - 7])
    with pytest.raises(DatasetError, match=rf"world2: dataset classes differ from the run's \(run {q} classes, "
                                           rf"dataset {q - 7}; missing from the dataset: '{dataset.classes[q - 7]}'"):
        evaluate(ft_run, fewer)
    with pytest.raises(DatasetError, match="dataset classes differ"):
        predict(ft_run, fewer)
    swapped = list(dataset.classes)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    other = _relabelled(dataset, tmp_path / "b", swapped)
    with pytest.raises(DatasetError, match=rf"same names in another order; class 0 is '{dataset.classes[0]}' in the run"):
        evaluate(ft_run, other)
    assert not list(ft_run.glob("eval-*world2*"))


@pytest.mark.parametrize("missing", [0, 7])
def test_streamed_location_probs_equal_the_whole_array(missing: int) -> None:
    """P(y|x) read chunk by chunk (never held whole) = location_probs, and so are the metrics."""
    from geocsp.evaluation import evaluate_scores
    from geocsp.nets import LocationEncoder, LocationEncoderConfig
    from geocsp.training.evaluate import StreamedLocationProbs
    from geocsp.training.inference import location_probs

    torch.manual_seed(0)
    enc = LocationEncoder(LocationEncoderConfig(encoder="wrap", network="fcnet", dim=16))
    head = torch.nn.Linear(16, 30)
    module = torch.nn.ModuleDict({"encoder": enc, "head": head}).train()  # evaluation switches to eval

    def logits(x: torch.Tensor) -> torch.Tensor:
        return head(enc(x))

    rng = np.random.default_rng(1)
    lonlat = np.c_[rng.uniform(-180, 180, 500), rng.uniform(-90, 90, 500)]
    has = np.ones(500, bool)
    has[rng.choice(500, missing, replace=False)] = False
    lonlat[~has] = np.nan
    whole = location_probs(logits, module, lonlat, has, 30, 64, torch.device("cpu"))
    streamed = StreamedLocationProbs(logits, module, lonlat, has, 30, 64, torch.device("cpu"))
    assert streamed.shape == whole.shape and module.training  # mode restored
    for step in (64, 50, 130, 500):  # reads that span batches, and a batch read twice
        streamed = StreamedLocationProbs(logits, module, lonlat, has, 30, 64, torch.device("cpu"))
        for lo in range(0, 500, step):
            np.testing.assert_array_equal(streamed[lo : lo + step], whole[lo : lo + step])  # NaN rows too
    img = rng.dirichlet(np.ones(30), 500).astype(np.float32)
    labels = rng.integers(0, 30, 500)
    assert evaluate_scores(img, streamed, labels, has, batch_size=64) == evaluate_scores(
        img, whole, labels, has, batch_size=64)
    with pytest.raises(TypeError, match="contiguous row slices"):
        streamed[np.arange(3)]  # type: ignore[index]


def test_nll_criterion_picks_the_lowest_calib_nll_and_is_recorded(calib_world: Path, ft_run: Path,
                                                                  tmp_path: Path) -> None:
    """``fusion_criterion=nll``: (β, ε) minimise the fused NLL on calib; recorded; its own default file name."""
    from geocsp.data import load_dataset
    from geocsp.evaluation.calibration import fit_fusion

    ev = importlib.import_module("geocsp.training.evaluate")
    m = evaluate(ft_run, calib_world, fusion_criterion="nll", out=tmp_path / "nll.json")
    top1 = evaluate(ft_run, calib_world, out=tmp_path / "top1.json")
    assert ev.eval_file_name("val", calib_world, "k", "nll") == "eval-val-small_calib-k-nll.json"  # never the top-1 one
    assert ev.eval_file_name("val", calib_world, "k") == "eval-val-small_calib-k.json"
    assert top1["fusion"]["criterion"] == "top1" and m["fusion"]["criterion"] == "nll"
    assert m["fused"] == top1["fused"]  # the paper's product does not depend on it
    ds = load_dataset(calib_world)
    cal = ds.split("calib")
    rows = np.flatnonzero(cal.labels >= 0)
    prior = load_prior(ft_run)
    img, loc, labels, has = ev._scored_rows(prior.logits, prior, cal, rows, m["probs_key"], prior.num_classes,
                                            4096, torch.device("cpu"))
    fit = fit_fusion(img, loc, labels, has, criterion="nll")
    best = min(fit.table.values(), key=lambda r: r["nll"])["nll"]
    chosen = fit.table[(fit.fusion.beta, fit.fusion.eps)]
    assert chosen["nll"] == best and m["fusion"]["calibrated"] == fit.fusion.to_dict()
    with pytest.raises(ConfigError, match=r"fusion_criterion.*one of"):
        evaluate(ft_run, calib_world, fusion_criterion="auc", out=tmp_path / "x.json")
    with pytest.raises(ConfigError, match=r"fusion_criterion.*one of"):
        resolve_config(FinetuneConfig, overrides=["fusion_criterion=top5"])
