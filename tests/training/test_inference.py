"""predict / embed from run directories (geocsp.training.inference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geocsp.errors import CoordinateError
from geocsp.prior import GeoPrior
from geocsp.training import embed, predict


def test_predict_dataset_and_csv(numpy_loc_probs, dataset, ft_run: Path, tmp_path: Path) -> None:
    df = predict(ft_run, dataset, tmp_path / "p.parquet", top_k=3)
    assert len(df) == len(dataset.split("val"))
    assert list(df.columns[-6:]) == ["class_1", "score_1", "class_2", "score_2", "class_3", "score_3"]
    assert (df["score_1"] >= df["score_2"]).all() and (df["score_2"] >= df["score_3"]).all()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), df)
    pts = np.array([[10.0, 45.0], [-70.0, -10.0], [140.0, -30.0]])
    pd.DataFrame({"lon": pts[:, 0], "lat": pts[:, 1]}).to_csv(tmp_path / "pts.csv", index=False)
    out = predict(ft_run, tmp_path / "pts.csv", tmp_path / "p.csv", top_k=2)
    want = numpy_loc_probs(ft_run, pts)
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
