"""``geocsp convert csp``: randomly initialised CSP / TorchSpatial location encoders, saved in the
trainer's ``.pth.tar`` layout, convert to geocsp encoders with TorchSpatial's own outputs.

The oracle is the ``torchspatial`` wheel (``make install-test``; the test skips without it):
``SpatialRelationEncoder`` (position encoders + ``MultiLayerFeedForwardNN``) inside
``models.LocationEncoder`` / ``models.LocationImageEncoder`` (the CSP pre-training model),
or ``models.FCNet`` for ``wrap``. Its modules import their siblings as top-level modules and
one module that is not in the wheel (``spherical_harmonics_ylm_numpy``, stubbed).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from tests.pretrained.peers import installed, max_abs_diff, peer_modules, sphere_points, stub_module
from torch import nn

from geocsp.errors import CheckpointError
from geocsp.nets import LocationEncoder
from geocsp.pretrained import convert_checkpoint

pytestmark = pytest.mark.skipif(not installed("torchspatial"), reason="torchspatial is not installed")

STUBS = {"spherical_harmonics_ylm_numpy": stub_module("spherical_harmonics_ylm_numpy", get_positional_encoding=None)}
ENCODER_CLASSES = {
    "Space2Vec-grid": "GridCellSpatialRelationLocationEncoder",
    "Space2Vec-theory": "TheoryGridCellSpatialRelationLocationEncoder",
    "Sphere2Vec-sphereC": "SphereSpatialRelationLocationEncoder",
    "Sphere2Vec-sphereC+": "SphereGirdSpatialRelationLocationEncoder",
    "Sphere2Vec-sphereM": "SphereMixScaleSpatialRelationLocationEncoder",
    "xyz": "XYZSpatialRelationLocationEncoder",
}
PARAMS = {
    "spa_enc_type": "Sphere2Vec-sphereC+", "num_filts": 64, "frequency_num": 32, "min_radius": 0.1,
    "max_radius": 360.0, "freq_init": "geometric", "num_hidden_layer": 1, "hidden_dim": 128,
    "spa_f_act": "leakyrelu", "use_layn": True, "skip_connection": True, "dropout": 0.5,
    "unsuper_loss": "contsoftmax", "device": "cpu", "dataset": "inat_2018", "lr": 0.001,
}  # fmt: skip


@pytest.fixture(scope="module")
def ts() -> Iterator[dict[str, ModuleType]]:
    with peer_modules("torchspatial", STUBS, flat=True):
        yield {m: importlib.import_module(m) for m in ("SpatialRelationEncoder", "models")}


def peer_model(ts: dict[str, ModuleType], params: dict[str, Any], csp: bool) -> nn.Module:
    """A TorchSpatial location model with random weights (LayerNorm perturbed), eval mode."""
    torch.manual_seed(0)
    p = params
    if p["spa_enc_type"] == "wrap":
        loc = ts["models"].FCNet(num_inputs=4, num_classes=10, num_filts=p["num_filts"])
    else:
        cls = getattr(ts["SpatialRelationEncoder"], ENCODER_CLASSES[p["spa_enc_type"]])
        kw = {"frequency_num": p["frequency_num"], "max_radius": p["max_radius"], "min_radius": p["min_radius"],
              "freq_init": p["freq_init"]} if "frequency_num" in cls.__init__.__code__.co_varnames else {}
        spa = cls(spa_embed_dim=p["num_filts"], coord_dim=2, device="cpu", ffn_act=p["spa_f_act"],
                  ffn_num_hidden_layers=p["num_hidden_layer"], ffn_dropout_rate=p["dropout"],
                  ffn_hidden_dim=p["hidden_dim"], ffn_use_layernormalize=p["use_layn"],
                  ffn_skip_connection=p["skip_connection"], **kw)
        loc = ts["models"].LocationEncoder(spa, num_inputs=2, num_classes=10, num_filts=p["num_filts"])
    model = ts["models"].LocationImageEncoder(loc, "contsoftmax", cnn_feat_dim=32, spa_enc_type="geo_net"
                                              if p["spa_enc_type"] == "wrap" else "sphere") if csp else loc
    with torch.no_grad():
        for name, t in model.named_parameters():
            if "layernorm" in name:
                t.add_(0.1 * torch.randn_like(t))
    return model.eval()


def save_pth_tar(model: nn.Module, params: dict[str, Any], path: Path) -> Path:
    """The TorchSpatial / CSP trainer's ``save_model`` layout."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.save({"epoch": 5, "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "params": params}, path)
    return path


def peer_embed(model: nn.Module, lonlat: torch.Tensor) -> torch.Tensor:
    """The embedding TorchSpatial computes: ``forward(x, return_feats=True)``; wrap encodes first."""
    if isinstance(getattr(model, "loc_enc", model), nn.Module) and hasattr(getattr(model, "loc_enc", model), "feats"):
        x = lonlat / lonlat.new_tensor([180.0, 90.0])
        x = torch.cat((torch.sin(torch.pi * x), torch.cos(torch.pi * x)), 1)  # TorchSpatial encode_loc_time
        return model(x, return_feats=True)
    return model(lonlat, return_feats=True)


@pytest.mark.parametrize(("spa_enc_type", "csp"), [
    ("Sphere2Vec-sphereC+", True), ("Sphere2Vec-sphereC", False), ("Sphere2Vec-sphereM", False),
    ("xyz", False), ("wrap", True),
])  # fmt: skip
def test_converted_equals_torchspatial(ts: dict[str, ModuleType], tmp_path: Path, spa_enc_type: str, csp: bool) -> None:
    params = {**PARAMS, "spa_enc_type": spa_enc_type}
    ref = peer_model(ts, params, csp)
    out = convert_checkpoint("csp", save_pth_tar(ref, params, tmp_path / "model.pth.tar"), tmp_path / "enc")
    ours = LocationEncoder.from_pretrained(out)
    lonlat = sphere_points(torch.float32)
    with torch.no_grad():
        expected = peer_embed(ref, lonlat)
        assert expected.shape == (len(lonlat), 64)
        assert max_abs_diff(ours(lonlat), expected) < 1e-5


@pytest.mark.parametrize("spa_enc_type", ["Space2Vec-grid", "Space2Vec-theory"])
def test_degree_grid_encoders_match_with_float64_phases(ts: dict[str, ModuleType], tmp_path: Path,
                                                        spa_enc_type: str) -> None:
    """grid / theory multiply raw degrees by up to 1/r_min = 10 rad/deg: phases reach 1.8e3 rad,
    which float32 resolves to ~1e-4 rad, while TorchSpatial computes them in float64 numpy. The
    converter sets ``float64_phase``: equal within 1e-5; with float32 phases they are not."""
    params = {**PARAMS, "spa_enc_type": spa_enc_type}
    ref = peer_model(ts, params, csp=True)
    out = convert_checkpoint("csp", save_pth_tar(ref, params, tmp_path / "m.pth.tar"), tmp_path / "enc")
    ours = LocationEncoder.from_pretrained(out)
    assert ours.config.encoder_args["float64_phase"] is True
    lonlat = sphere_points(torch.float32)
    with torch.no_grad():
        expected = peer_embed(ref, lonlat)
        assert max_abs_diff(ours(lonlat), expected) < 1e-5
        cfg = dataclasses.replace(ours.config, encoder_args={**ours.config.encoder_args, "float64_phase": False})
        f32 = LocationEncoder(cfg)
        f32.load_state_dict(ours.state_dict())
        assert max_abs_diff(f32(lonlat), expected) > 1e-5  # the test can fail: float32 phases are off


@pytest.mark.parametrize(("over", "match"), [
    ({"spa_enc_type": "rbf"}, r"spa_enc_type = 'rbf' cannot be converted; geocsp converts 'Space2Vec-grid'"),
    ({"freq_init": "random"}, r"freq_init = 'random' cannot be converted"),
    ({"num_hidden_layer": 2}, r"not the CSP / TorchSpatial layout .*lacks 'ffn.layers.1.layernorm.bias'"),
    ({"num_filts": 32}, r"tensor for 'network.output.linear.weight' .* shape \(64, 128\), the architecture needs \(32, 128\)"),
])  # fmt: skip
def test_mismatched_checkpoints_are_refused(ts: dict[str, ModuleType], tmp_path: Path, over: dict[str, Any], match: str) -> None:
    path = save_pth_tar(peer_model(ts, PARAMS, csp=True), {**PARAMS, **over}, tmp_path / "m.pth.tar")
    with pytest.raises(CheckpointError, match=match):
        convert_checkpoint("csp", path, tmp_path / "enc")
    assert not (tmp_path / "enc").exists()
