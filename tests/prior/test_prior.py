"""GeoPrior on the real LocationEncoder: formula, save/load, grid prediction, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geocsp.errors import CheckpointError, ConfigError, CoordinateError
from geocsp.io import load_checkpoint_dir
from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.prior import GeoPrior
from geocsp.prior.prior import grid_centres


def make_encoder(extra_dim: int = 0) -> LocationEncoder:
    torch.manual_seed(0)
    return LocationEncoder(LocationEncoderConfig(encoder="sphereC+", dim=16, extra_dim=extra_dim))


def make_prior(q: int = 5, extra_dim: int = 0) -> GeoPrior:
    enc = make_encoder(extra_dim)
    w = torch.randn(q, enc.dim, generator=torch.Generator().manual_seed(1))
    return GeoPrior(enc, w, [f"sp{i}" for i in range(q)])


def test_logits_and_probs_match_formula() -> None:
    p = make_prior().eval()
    x = torch.tensor([[10.0, 45.0], [-180.0, -90.0], [180.0, 90.0]])
    e = p.encoder(x).double()
    ref = torch.sigmoid(e @ p.classifier.weight.double().T)
    torch.testing.assert_close(p.probs(x).double(), ref, rtol=1e-6, atol=1e-7)
    assert p.logits(x).shape == (3, 5) and p.num_classes == 5
    torch.testing.assert_close(p.probs(x.numpy().tolist()), p.probs(x))  # array-like input
    with pytest.raises(CoordinateError):
        p.probs([[200.0, 0.0]])


def test_save_load_roundtrip(tmp_path: Path) -> None:
    p = make_prior().eval()
    p.save_pretrained(tmp_path / "prior")
    q = GeoPrior.from_pretrained(tmp_path / "prior")
    assert not q.training
    x = torch.rand(16, 2) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
    torch.testing.assert_close(q.probs(x), p.probs(x), rtol=0, atol=0)
    assert q.classes == p.classes
    _, config = load_checkpoint_dir(tmp_path / "prior")
    assert config["kind"] == "geoprior" and config["num_classes"] == 5


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        GeoPrior.from_pretrained(tmp_path / "missing")
    make_encoder().save_pretrained(tmp_path / "enc")  # a bare encoder is not a prior
    with pytest.raises(CheckpointError, match="expected a checkpoint of kind 'geoprior'"):
        GeoPrior.from_pretrained(tmp_path / "enc")
    make_encoder().save_pretrained(tmp_path / "noT", extra_config={"kind": "geoprior"})
    with pytest.raises(CheckpointError, match="weights lack 'class_weight'"):
        GeoPrior.from_pretrained(tmp_path / "noT")
    w = {"class_weight": torch.zeros(3, 16)}
    make_encoder().save_pretrained(tmp_path / "bad", w, {"kind": "geoprior", "classes": ["a"]})
    with pytest.raises(CheckpointError, match="classes: expected 3 names"):
        GeoPrior.from_pretrained(tmp_path / "bad")


def test_constructor_errors() -> None:
    with pytest.raises(ConfigError, match=r"class_weight: expected shape \(Q, 16\)"):
        GeoPrior(make_encoder(), torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="classes: expected 3 names"):
        GeoPrior(make_encoder(), torch.zeros(3, 16), ["a"])


def test_predict_grid_layout_and_eval_mode() -> None:
    p = make_prior().train()
    lats, lons, probs = p.predict_grid(
        30.0, bbox=(-180, -60, 0, 90), classes=["sp3", 1], batch_size=7
    )
    assert lons.tolist() == [-165, -135, -105, -75, -45, -15]
    assert lats.tolist() == [75, 45, 15, -15, -45]
    assert probs.shape == (5, 6, 2) and probs.dtype == np.float32
    assert p.training  # mode restored
    p.eval()
    ref = p.probs(torch.tensor([[lons[2], lats[4]]], dtype=torch.float32))[0, [3, 1]]
    np.testing.assert_allclose(probs[4, 2], ref.detach().numpy(), rtol=1e-6)
    with pytest.raises(ConfigError, match="class 'nope'"):
        p.predict_grid(30.0, classes=["nope"])


def test_predict_grid_with_extra_inputs() -> None:
    p = make_prior(extra_dim=2).eval()
    _, _, a = p.predict_grid(45.0, extra=torch.tensor([0.0, 1.0]))
    _, _, b = p.predict_grid(45.0, extra=torch.tensor([1.0, 0.0]))
    assert a.shape == (4, 8, 5) and not np.allclose(a, b)


def test_grid_centres_errors() -> None:
    with pytest.raises(ConfigError, match="res_deg: expected > 0"):
        grid_centres(0.0)
    with pytest.raises(ConfigError, match="bbox: expected lon_min < lon_max"):
        grid_centres(1.0, (10, 0, 5, 10))
