"""evaluate / predict / embed against independent float64 NumPy computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geocsp.errors import CoordinateError, DatasetError
from geocsp.prior import GeoPrior
from geocsp.training import FinetuneConfig, embed, evaluate, finetune, predict, resolve_config


@pytest.fixture(scope="module")
def ft_run(dataset, tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("ev") / "ft"
    cfg = resolve_config(FinetuneConfig, overrides=[*tiny, "data.epochs=3", "ratio=0.1"])
    finetune(cfg, dataset, run)
    return run


def _numpy_loc_probs(run: Path, lonlat: np.ndarray) -> np.ndarray:
    """sigmoid(T e(x)) in float64 from the saved weights (encoder in eval mode)."""
    prior = GeoPrior.from_pretrained(run / "prior")
    with torch.no_grad():
        emb = prior.encoder(torch.as_tensor(lonlat, dtype=torch.float32)).double().numpy()
    t = prior.classifier.weight.detach().double().numpy()
    return 1.0 / (1.0 + np.exp(-(emb @ t.T)))


def test_evaluate_matches_numpy_metrics(dataset, ft_run: Path) -> None:
    m = evaluate(ft_run, dataset)
    assert m == json.loads((ft_run / "metrics.json").read_text())
    assert m["probs_key"] == "ratio0.100"
    val = dataset.split("val")
    rows = np.flatnonzero(val.labels >= 0)
    img = val.probs("ratio0.100")[rows].astype(np.float64)
    has = val.has_location[rows]
    loc = np.ones_like(img)
    loc[has] = _numpy_loc_probs(ft_run, val.lonlat[rows][has])
    y = val.labels[rows]
    fused = img * loc
    top1 = float(np.mean(fused.argmax(1) == y))
    rank = 1 + (fused > fused[np.arange(len(y)), y][:, None]).sum(1)
    assert m["fused"]["top1"] == pytest.approx(top1, abs=1.5 / len(y))
    assert m["fused"]["mrr"] == pytest.approx(np.mean(1.0 / rank), abs=1e-3)
    loc_top1 = float(np.mean(loc[has].argmax(1) == y[has]))
    assert m["location"]["top1"] == pytest.approx(loc_top1, abs=1.5 / has.sum())
    assert m["location"]["n"] == int(has.sum()) and m["image"]["n"] == len(y)


def test_evaluate_beta_tune_and_other_split_file(dataset, ft_run: Path) -> None:
    m = evaluate(ft_run, dataset, split="val", probs_key="default", beta="tune")
    assert m["probs_key"] == "default" and m["beta"] in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    with pytest.raises(DatasetError, match="has no probabilities 'nope'"):
        evaluate(ft_run, dataset, probs_key="nope")


def test_predict_dataset_and_csv(dataset, ft_run: Path, tmp_path: Path) -> None:
    df = predict(ft_run, dataset, tmp_path / "p.parquet", top_k=3)
    assert len(df) == len(dataset.split("val"))
    assert list(df.columns[-6:]) == ["class_1", "score_1", "class_2", "score_2", "class_3", "score_3"]
    assert (df["score_1"] >= df["score_2"]).all() and (df["score_2"] >= df["score_3"]).all()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), df)
    pts = np.array([[10.0, 45.0], [-70.0, -10.0], [140.0, -30.0]])
    pd.DataFrame({"lon": pts[:, 0], "lat": pts[:, 1]}).to_csv(tmp_path / "pts.csv", index=False)
    out = predict(ft_run, tmp_path / "pts.csv", tmp_path / "p.csv", top_k=2)
    want = _numpy_loc_probs(ft_run, pts)
    order = np.argsort(-want, axis=1)
    classes = np.asarray(dataset.classes)
    assert out["class_1"].tolist() == classes[order[:, 0]].tolist()
    np.testing.assert_allclose(out["score_1"], want[np.arange(3), order[:, 0]], rtol=1e-5)
    # with image probabilities the scores are fused: P(y|I) * P(y|x)
    img = np.full((3, len(classes)), 1e-3, np.float32)
    img[:, 0] = 0.9
    np.save(tmp_path / "img.npy", img)
    fused = predict(ft_run, tmp_path / "pts.csv", top_k=1, image_probs=tmp_path / "img.npy")
    np.testing.assert_allclose(fused["score_1"], (img.astype(np.float64) * want).max(1), rtol=1e-5)


def test_predict_refuses_swapped_columns(ft_run: Path, tmp_path: Path) -> None:
    pd.DataFrame({"lon": [45.0, -33.0], "lat": [10.0, 150.0]}).to_csv(tmp_path / "swap.csv", index=False)
    with pytest.raises(CoordinateError, match=r"swap.csv: latitude outside \[-90, 90\].*swapped"):
        predict(ft_run, tmp_path / "swap.csv")


def test_embed_from_runs_and_outputs(ft_run: Path, tmp_path: Path) -> None:
    pts = np.array([[0.0, 0.0], [179.5, 89.0], [-180.0, -90.0]])
    emb = embed(ft_run, pts, tmp_path / "e.npy")
    prior = GeoPrior.from_pretrained(ft_run / "prior")
    with torch.no_grad():
        want = prior.encoder(torch.as_tensor(pts, dtype=torch.float32)).numpy()
    np.testing.assert_array_equal(emb, want)
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), emb)
    pd.DataFrame({"lon": pts[:, 0], "lat": pts[:, 1]}).to_csv(tmp_path / "pts.csv", index=False)
    embed(ft_run / "prior", tmp_path / "pts.csv", tmp_path / "e.csv")
    table = pd.read_csv(tmp_path / "e.csv")
    assert list(table.columns[:3]) == ["lon", "lat", "e0"] and table.shape == (3, 2 + emb.shape[1])
    np.testing.assert_allclose(table.iloc[:, 2:].to_numpy(), emb, rtol=1e-6)
    with pytest.raises(CoordinateError, match="lonlat: latitude outside"):
        embed(ft_run, np.array([[10.0, 95.0]]))
