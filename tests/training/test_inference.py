"""predict / embed from run directories (geocsp.training.inference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geocsp.errors import ConfigError, CoordinateError, DatasetError, MissingFileError
from geocsp.prior import GeoPrior
from geocsp.training import embed, predict
from geocsp.training.inference import load_row_aligned


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
    img[:, 0] = 1.0 - 1e-3 * (len(classes) - 1)  # rows are distributions (summing to 1)
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


def test_load_row_aligned(tmp_path: Path) -> None:
    p = tmp_path / "a.npy"
    np.save(p, np.ones((3, 2), np.float64))
    a = load_row_aligned(p, 3, "probs")
    assert a.dtype == np.float32 and a.shape == (3, 2)
    with pytest.raises(DatasetError, match=r"expected a \(4, Q\) array"):
        load_row_aligned(p, 4, "probs")
    with pytest.raises(MissingFileError, match="probs file not found"):
        load_row_aligned(tmp_path / "b.npy", 3, "probs")


def _pts(tmp_path: Path) -> Path:
    pd.DataFrame({"lon": [10.0, -70.0], "lat": [45.0, -10.0]}).to_csv(tmp_path / "pts.csv", index=False)
    return tmp_path / "pts.csv"


def test_image_probs_must_be_distributions(dataset, ft_run: Path, tmp_path: Path) -> None:
    q = len(dataset.classes)
    pts = _pts(tmp_path)
    good = np.full((2, q), 1.0 / q, np.float32)
    for row, col, value, needle in [(1, 3, -0.2, r"img.npy:1:class 3: probability -0.2"),
                                    (0, 0, np.nan, r"img.npy:0:class 0: probability nan"),
                                    (1, 2, 1.5, r"img.npy:1:class 2: probability 1.5")]:
        bad = good.copy()
        bad[row, col] = value
        np.save(tmp_path / "img.npy", bad)
        for renorm in (False, True):  # negative / NaN / > 1 are refused even with --renormalize
            with pytest.raises(DatasetError, match=needle):
                predict(ft_run, pts, image_probs=tmp_path / "img.npy", renormalize=renorm)
    off = good * 2.0  # rows sum to 2
    np.save(tmp_path / "img.npy", off)
    with pytest.raises(DatasetError, match=r"img.npy:0: probabilities sum to 2; expected 1 \(within 0.001\)"):
        predict(ft_run, pts, image_probs=tmp_path / "img.npy")
    a = predict(ft_run, pts, image_probs=tmp_path / "img.npy", renormalize=True)
    b = predict(ft_run, pts, image_probs=good)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(DatasetError, match="all 0"):
        predict(ft_run, pts, image_probs=np.zeros((2, q), np.float32), renormalize=True)


def test_predict_and_embed_refuse_an_existing_out(ft_run: Path, tmp_path: Path) -> None:
    pts = _pts(tmp_path)
    for fn, out in ((predict, tmp_path / "p.csv"), (embed, tmp_path / "e.npy")):
        out.write_text("keep")
        with pytest.raises(ConfigError, match=rf"{out.name}: exists; pass --overwrite"):
            fn(ft_run, pts, out)
        assert out.read_text() == "keep"
        fn(ft_run, pts, out, overwrite=True)
        assert out.read_bytes() != b"keep"


def test_embed_refuses_an_unknown_suffix_before_loading(tmp_path: Path) -> None:
    """The API checks --out's suffix first (was only the CLI): here the encoder does not even exist."""
    with pytest.raises(ConfigError, match=r"e\.xyz: expected \.npy or a table"):
        embed(tmp_path / "no-such-run", _pts(tmp_path), tmp_path / "e.xyz")
    assert not (tmp_path / "e.xyz").exists()


@pytest.mark.parametrize("beta", [float("nan"), -1.0, float("inf")])
def test_predict_refuses_a_beta_that_is_not_finite_and_nonnegative(ft_run: Path, tmp_path: Path,
                                                                    beta: float) -> None:
    with pytest.raises(ConfigError, match=r"beta \(--beta\) must be a finite number >= 0"):
        predict(ft_run, _pts(tmp_path), tmp_path / "p.csv", beta=beta)
    assert not (tmp_path / "p.csv").exists()


def _split_with_keys(*keys: str):
    from geocsp.data import Split

    return Split("val", pd.DataFrame({"lon": [0.0], "lat": [0.0]}), np.zeros((1, 2)), None, None,
                 {k: np.ones((1, 1), np.float32) for k in keys})


def test_resolve_probs_key_rule() -> None:
    """auto -> default (λ = 1) or ratio{λ:.3f}; nothing falls back silently (docs/dataset.md)."""
    from geocsp.training.inference import resolve_probs_key

    s = _split_with_keys("default", "ratio0.050")
    assert resolve_probs_key(s, "auto", None) == "default" and resolve_probs_key(s, "auto", 1.0) == "default"
    assert resolve_probs_key(s, "auto", 0.05) == "ratio0.050" and resolve_probs_key(s, "ratio0.050", 0.1) == "ratio0.050"
    assert resolve_probs_key(s, "default", 0.05) == "default"
    with pytest.raises(DatasetError, match=r"^split 'val' has no probabilities 'ratio0.100' for label ratio 0.1 "
                                           r"\(stored: default, ratio0.050\); store the few-shot classifier's "
                                           r"probabilities under 'ratio0.100' \(geocsp data add-probs\), or score "
                                           r"with the full-label classifier: geocsp evaluate --probs-key default "
                                           r"\(probs_key='default' in Python\)$"):
        resolve_probs_key(s, "auto", 0.1)
    with pytest.raises(DatasetError, match=r"^split 'val' has no probabilities 'ratio0.05' \(stored: default, "
                                           r"ratio0.050\); did you mean 'ratio0.050'\?; pass one of the stored keys$"):
        resolve_probs_key(s, "ratio0.05", 0.05)
    with pytest.raises(DatasetError, match=r"'defualt' .*did you mean 'default'\?"):
        resolve_probs_key(s, "defualt", None)
    with pytest.raises(DatasetError, match=r"has no probabilities 'default' for label ratio 1.0 \(stored: "
                                           r"ratio0.050\); store the full-label classifier's probabilities under"):
        resolve_probs_key(_split_with_keys("ratio0.050"), "auto", 1.0)
