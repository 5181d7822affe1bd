"""``geocsp convert satclip``: a randomly initialised SatCLIP location encoder, saved as SatCLIP's
Lightning checkpoint, converts to a geocsp encoder with SatCLIP's own outputs.

The oracle is SatCLIP's location encoder from the ``rangegeo`` wheel (``make install-test``);
the test skips where it is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.pretrained.peers import (
    SATCLIP_STUBS,
    installed,
    max_abs_diff,
    peer_modules,
    sphere_points,
)
from torch import nn

from geocsp.errors import CheckpointError
from geocsp.nets import LocationEncoder
from geocsp.pretrained import convert_checkpoint

needs_rangegeo = pytest.mark.skipif(not installed("rangegeo"), reason="rangegeo (SatCLIP's encoder) is not installed")

HPARAMS = {
    "le_type": "sphericalharmonics", "pe_type": "siren", "legendre_polys": 10,
    "harmonics_calculation": "analytic", "min_radius": 1, "max_radius": 360, "frequency_num": 16,
    "embed_dim": 64, "capacity": 128, "num_hidden_layers": 2, "learning_rate": 1e-4,
}  # fmt: skip


def satclip_model(hp: dict[str, Any]) -> nn.Module:
    """SatCLIP's own location encoder (float64, eval), random weights (seeded)."""
    with peer_modules("rangegeo", SATCLIP_STUBS):
        le = importlib.import_module("rangegeo.satclip.location_encoder")
        torch.manual_seed(0)
        posenc = le.get_positional_encoding(hp["le_type"], legendre_polys=hp["legendre_polys"],
                                            harmonics_calculation=hp["harmonics_calculation"])
        nnet = le.get_neural_network(hp["pe_type"], posenc.embedding_dim, num_classes=hp["embed_dim"],
                                     dim_hidden=hp["capacity"], num_layers=hp["num_hidden_layers"])
        return le.LocationEncoder(posenc, nnet).double().eval()


def save_lightning(model: nn.Module, hp: dict[str, Any], path: Path) -> Path:
    """SatCLIP's checkpoint layout: the location encoder under ``model.location.``, plus a vision tower."""
    state = {f"model.location.{k}": v for k, v in model.state_dict().items()}
    state["model.visual.conv1.weight"] = torch.randn(8, 13, 3, 3)
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.1.0", "state_dict": state,
                "hyper_parameters": hp, "optimizer_states": [], "lr_schedulers": []}, path)
    return path


@needs_rangegeo
def test_converted_equals_satclip(tmp_path: Path) -> None:
    ref = satclip_model(HPARAMS)
    ckpt = save_lightning(ref, HPARAMS, tmp_path / "satclip.ckpt")
    out = convert_checkpoint("satclip", ckpt, tmp_path / "enc")
    ours = LocationEncoder.from_pretrained(out)
    assert ours.config.encoder == "spherical_harmonics_satclip" and ours.config.network == "siren"
    lonlat = sphere_points(torch.float64)
    with torch.no_grad():
        expected = ref(lonlat)  # SatCLIP runs its location encoder in float64
        assert expected.shape == (len(lonlat), 64)
        assert max_abs_diff(ours(lonlat.float()), expected) < 1e-5
        assert max_abs_diff(ours.double()(lonlat), expected) < 1e-10


@needs_rangegeo
def test_orthonormal_basis_would_not_do(tmp_path: Path) -> None:
    """The convention matters: the same weights on geocsp's orthonormal basis differ."""
    ref = satclip_model(HPARAMS)
    out = convert_checkpoint("satclip", save_lightning(ref, HPARAMS, tmp_path / "s.ckpt"), tmp_path / "enc")
    ours = LocationEncoder.from_pretrained(out)
    plain = LocationEncoder(dataclasses.replace(ours.config, encoder="spherical_harmonics"))
    plain.load_state_dict(ours.state_dict())
    lonlat = sphere_points(torch.float64)[:100]
    with torch.no_grad():
        assert max_abs_diff(plain.double()(lonlat), ref(lonlat)) > 1e-2


def _fake_satclip(path: Path, **over: Any) -> Path:
    """A SatCLIP-layout checkpoint with random tensors of the right shapes (no peer code)."""
    hp = {**HPARAMS, **over}
    state = {"model.location.nnet.layers.0.weight": torch.randn(128, 100), "model.location.nnet.layers.0.bias": torch.randn(128),
             "model.location.nnet.layers.1.weight": torch.randn(128, 128), "model.location.nnet.layers.1.bias": torch.randn(128),
             "model.location.nnet.last_layer.weight": torch.randn(64, 128), "model.location.nnet.last_layer.bias": torch.randn(64)}
    torch.save({"state_dict": state, "hyper_parameters": hp}, path)
    return path


def test_fake_checkpoint_converts_without_the_peer(tmp_path: Path) -> None:
    enc = LocationEncoder.from_pretrained(convert_checkpoint("satclip", _fake_satclip(tmp_path / "s.ckpt"), tmp_path / "e"))
    assert enc.config.encoder_args == {"max_degree": 9} and enc.dim == 64


@pytest.mark.parametrize(("over", "match"), [
    ({"le_type": "spherecplus"}, r"le_type = 'spherecplus' cannot be converted; geocsp converts 'sphericalharmonics'"),
    ({"pe_type": "fcnet"}, r"pe_type = 'fcnet' cannot be converted"),
    ({"harmonics_calculation": "closed-form"}, r"harmonics_calculation = 'closed-form' cannot be converted"),
    ({"legendre_polys": 12}, r"tensor for 'network.body.0.linear.weight' .* \(128, 100\), the architecture needs \(128, 144\)"),
    ({"num_hidden_layers": 3}, r"not the SatCLIP location-encoder layout .*lacks 'nnet.layers.2.bias'"),
    ({"embed_dim": "256"}, r"hyper-parameter 'embed_dim' = '256', expected int"),
])  # fmt: skip
def test_other_satclip_settings_are_refused(tmp_path: Path, over: dict[str, Any], match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        convert_checkpoint("satclip", _fake_satclip(tmp_path / "s.ckpt", **over), tmp_path / "e")
    assert not (tmp_path / "e").exists()
