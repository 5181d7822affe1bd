"""LocationEncoder: assembly, gradients, extra features, save/load and checkpoint errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geocsp.config import from_dict
from geocsp.encoders import create_encoder, list_encoders
from geocsp.errors import CheckpointError, ConfigError
from geocsp.nets import LocationEncoder, LocationEncoderConfig, load_pretrained

# small networks keep the registry-wide tests fast
SMALL_NET = {
    "ffn": {"hidden_dim": 32},
    "fcnet": {"num_res_blocks": 2},
    "siren": {"hidden_dim": 32},
    "multibranch": {"hidden_dim": 16, "num_hidden_layers": 1},
    "linear": {},
}


def small(encoder: str, **kw: object) -> LocationEncoder:
    torch.manual_seed(0)
    default = LocationEncoder(LocationEncoderConfig(encoder=encoder, dim=8)).config.network
    cfg = LocationEncoderConfig(encoder=encoder, network_args=SMALL_NET[default], dim=16, **kw)  # type: ignore[arg-type]
    return LocationEncoder(cfg)


def lonlat(n: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 2, generator=g) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
    return torch.cat([pts, torch.tensor([[180.0, 90.0], [-180.0, -90.0]])])


def test_default_config_is_grid_ffn() -> None:
    enc = LocationEncoder()
    assert enc.config.encoder == "grid" and enc.config.network == "ffn" and enc.dim == 256
    assert enc.in_dim == create_encoder("grid").out_dim
    assert enc.config.network_args["hidden_dim"] == 512


@pytest.mark.parametrize("name", list_encoders())
def test_gradients_reach_every_trainable_parameter(name: str) -> None:
    enc = small(name).eval()
    out = enc(lonlat())
    assert out.shape == (26, 16) and torch.isfinite(out).all()
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    params = dict(enc.named_parameters())
    assert params and all(k.startswith("network.") for k in params)  # encoders are fixed
    for key, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), key
        assert float(p.grad.abs().sum()) > 0, key
    for key, buf in enc.named_buffers():
        assert not buf.requires_grad and buf.grad is None, key


def _perturb_buffers(enc: LocationEncoder) -> None:
    for buf in enc.buffers():
        if buf.is_floating_point():
            buf.add_(0.01)


@pytest.mark.parametrize("name", list_encoders())
def test_save_load_identical_outputs(name: str, tmp_path: Path) -> None:
    enc = small(name).eval()
    _perturb_buffers(enc)  # the loaded buffers must come from the file, not the seed
    x = lonlat()
    enc.save_pretrained(tmp_path / "ckpt")
    loaded = LocationEncoder.from_pretrained(tmp_path / "ckpt")
    assert not loaded.training
    assert loaded.config == enc.config
    assert torch.equal(loaded(x), enc(x))


def test_checkpoint_layout_and_extras(tmp_path: Path) -> None:
    enc = small("rff", extra_dim=2)
    w = torch.randn(5, 16)
    enc.save_pretrained(
        tmp_path, extra_tensors={"class_weight": w}, extra_config={"provenance": {"run": 1}}
    )
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["kind"] == "location_encoder" and meta["provenance"] == {"run": 1}
    assert "geocsp_version" in meta and meta["config"]["encoder_args"]["seed"] == 0
    assert from_dict(LocationEncoderConfig, meta["config"]) == enc.config
    model, extras, full = load_pretrained(tmp_path)
    assert torch.equal(extras["class_weight"], w) and list(extras) == ["class_weight"]
    assert full == meta and model.config.extra_dim == 2


def test_extra_config_kind_is_enforced(tmp_path: Path) -> None:
    small("direct").save_pretrained(tmp_path, extra_config={"kind": "geo_prior"})
    with pytest.raises(
        CheckpointError, match="expected a checkpoint of kind 'location_encoder', got 'geo_prior'"
    ):
        LocationEncoder.from_pretrained(tmp_path)
    model, _, meta = load_pretrained(tmp_path, kind="geo_prior")
    assert meta["kind"] == "geo_prior" and model.config.encoder == "direct"


def test_save_errors(tmp_path: Path) -> None:
    enc = small("direct")
    key = next(iter(enc.state_dict()))
    with pytest.raises(ConfigError, match=f"extra tensor '{key}' collides"):
        enc.save_pretrained(tmp_path, extra_tensors={key: torch.zeros(1)})
    with pytest.raises(ConfigError, match="reserved key 'config'"):
        enc.save_pretrained(tmp_path, extra_config={"config": {}})


def test_from_pretrained_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        LocationEncoder.from_pretrained(tmp_path / "absent")
    d = tmp_path / "ckpt"
    small("direct").save_pretrained(d)
    (d / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        LocationEncoder.from_pretrained(d)
    small("direct").save_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="invalid JSON"):
        LocationEncoder.from_pretrained(d)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"missing config.json"):
        LocationEncoder.from_pretrained(d)


def test_from_pretrained_config_weight_mismatch(tmp_path: Path) -> None:
    small("direct").save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["dim"] = 17
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"has shape .* the config needs"):
        LocationEncoder.from_pretrained(tmp_path)
    meta["config"]["encoder"] = "no_such_encoder"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="invalid location-encoder config"):
        LocationEncoder.from_pretrained(tmp_path)
    meta["config"] = {"encoder": "direct", "network": "linear", "dim": 16}
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"weights lack 'network.linear.bias' required by the config"
    ):
        LocationEncoder.from_pretrained(tmp_path)


def test_extra_features_are_appended() -> None:
    enc = small("wrap", extra_dim=3).eval()
    assert enc.in_dim == 4 + 3
    x, extra = lonlat(4), torch.randn(6, 3)
    out = enc(x, extra)
    assert out.shape == (6, 16)
    assert not torch.allclose(out, enc(x, extra + 1.0))
    with pytest.raises(ConfigError, match=r"expects extra features of shape \(B, 3\), got None"):
        enc(x)
    with pytest.raises(ConfigError, match=r"got \(6, 2\)"):
        enc(x, extra[:, :2])


def test_features_only_without_position() -> None:
    enc = LocationEncoder(
        LocationEncoderConfig(use_position=False, extra_dim=5, network="linear", dim=4)
    )
    assert enc.position is None and enc.in_dim == 5
    assert enc(None, torch.randn(3, 5)).shape == (3, 4)


def test_geoclip_branches_are_passed_to_multibranch() -> None:
    enc = small("geoclip")
    assert enc.config.network == "multibranch"
    assert enc.config.network_args["branches"] == enc.position.branches > 1  # type: ignore[union-attr]
    assert len(enc.network.branches) == enc.position.branches  # type: ignore[union-attr]


def test_network_override_and_aliases() -> None:
    enc = LocationEncoder(LocationEncoderConfig(encoder="GEO_NET", network="SIREN", dim=8))
    assert enc.config.encoder == "wrap" and enc.config.network == "siren"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"dim": 0}, "dim must be >= 1"),
        ({"extra_dim": -1}, "extra_dim must be >= 0"),
        ({"use_position": False}, "needs extra_dim > 0"),
        ({"encoder": "sphergrid"}, "unknown encoder 'sphergrid'"),
        ({"network": "fcn"}, "unknown network 'fcn'; did you mean 'fcnet'"),
        ({"network_args": {"hidden": 3}}, "unknown config key 'network_args.hidden'"),
        ({"encoder_args": {"bogus": 1}}, "unknown config key .*bogus"),
        ({"dimension": 3}, "unknown config key 'location_encoder.dimension'"),
    ],
)
def test_config_errors(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LocationEncoder.from_dict(data)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.update(dim=10**12), r"weight '.*' has shape \(.*\), the config needs \(1000000000000, "),
    (lambda c: c["encoder_args"].update(num_scales=10**9), r"weight 'position\.freqs' has shape \(4,\), the config "
                                                           r"needs \(1000000000,\)"),
    (lambda c: c.update(dim=float("inf")), r"config\.json: invalid location-encoder config"),
])
def test_a_config_asking_for_huge_weights_is_refused_before_allocating(tmp_path: Path, edit, message: str) -> None:
    """A tampered config.json (dim 1e12: a 2 PB allocation; num_scales 1e9: killed by the OOM
    killer; dim 1e400 parsed as inf) is one CheckpointError: the shapes are checked on the meta device."""
    d = LocationEncoder(LocationEncoderConfig(encoder="grid", encoder_args={"num_scales": 4}, dim=8)).save_pretrained(
        tmp_path / "enc")
    meta = json.loads((d / "config.json").read_text())
    edit(meta["config"])
    (d / "config.json").write_text(json.dumps(meta).replace("Infinity", "1e400"))
    with pytest.raises(CheckpointError, match=message) as info:
        LocationEncoder.from_pretrained(d)
    assert "\n" not in str(info.value)
