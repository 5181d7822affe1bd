"""Registry-driven contract tests for every encoder, plus the public API functions."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest
import torch

import geocsp.encoders as enc_pkg
from geocsp.config import from_dict, to_dict
from geocsp.encoders import (
    ENCODERS,
    PositionEncoder,
    create_encoder,
    encoders_markdown_table,
    get_encoder_config,
    list_encoders,
)
from geocsp.encoders.base import ENCODERS as BASE_ENCODERS
from geocsp.errors import ConfigError
from geocsp.io import load_tensors, save_tensors

NAMES = list_encoders()
EDGES = torch.tensor(
    [[-180.0, -90.0], [-180.0, 90.0], [180.0, -90.0], [180.0, 90.0], [0.0, 0.0], [37.5, -12.25]]
)

EXPECTED_DIMS = {
    "direct": 2, "wrap": 4, "wrap_ffn": 4, "xyz": 3, "grid": 128, "grid_rad": 128,
    "theory": 192, "theory_rad": 192, "sphereC": 96, "sphereC+": 192, "sphereM": 160,
    "sphereM+": 256, "dfs": 4224, "nerf": 96, "rbf": 200, "rff": 256, "geoclip": 1536,
    "spherical_harmonics": 121, "spherical_harmonics_satclip": 121,
}  # fmt: skip


def test_expected_dims_cover_registry() -> None:
    assert set(EXPECTED_DIMS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_contract_shape_dtype_finite(name: str) -> None:
    enc = create_encoder(name)
    assert isinstance(enc, PositionEncoder)
    out = enc(EDGES)
    assert out.shape == (len(EDGES), enc.out_dim) == (len(EDGES), EXPECTED_DIMS[name])
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert enc(EDGES.double()).dtype == torch.float64


@pytest.mark.parametrize("name", NAMES)
def test_contract_gradients_flow_to_input_and_no_parameters(name: str) -> None:
    enc = create_encoder(name)
    assert list(enc.parameters()) == []  # encoders are fixed maps; networks are trained
    x = EDGES.clone().requires_grad_(True)
    (enc(x) * torch.linspace(-1, 1, enc.out_dim)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_contract_save_load_identical(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    enc = create_encoder(name)
    if hasattr(enc, "set_anchors"):
        enc.set_anchors(
            torch.rand(enc.out_dim, 2) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
        )
    path = tmp_path / "enc.safetensors"
    save_tensors(path, dict(enc.state_dict()))
    fields = {f.name for f in dataclasses.fields(enc.config)}
    other = create_encoder(name, **({"seed": 123} if "seed" in fields else {}))
    other.load_state_dict(load_tensors(path))
    torch.testing.assert_close(other(EDGES), enc(EDGES), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_construction_is_reproducible(name: str) -> None:
    a, b = create_encoder(name), create_encoder(name)
    torch.testing.assert_close(a(EDGES), b(EDGES), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name,overrides",
    [("rbf", {}), ("rff", {}), ("geoclip", {}), ("grid", {"freq_schedule": "random"})],
)
def test_seed_changes_random_encoders(name: str, overrides: dict) -> None:
    a = create_encoder(name, seed=0, **overrides)
    b = create_encoder(name, seed=1, **overrides)
    assert not torch.allclose(a(EDGES), b(EDGES))


@pytest.mark.parametrize(
    "alias,canonical",
    [
        ("naive", "direct"), ("GEO_NET", "wrap"), ("geo_net_fft", "wrap_ffn"),
        ("gridcell", "grid"), ("space2vec-GRID", "grid"), ("GridCellNorm", "grid_rad"),
        ("Space2Vec-theory", "theory"), ("theorynorm", "theory_rad"), ("sphere", "sphereC"),
        ("spheregrid", "sphereC+"), ("SphereMixScale", "sphereM"),
        ("spheregridmixscale", "sphereM+"), ("dft", "dfs"), ("SH", "spherical_harmonics"),
        ("spherec+", "sphereC+"), ("GEOCLIP", "geoclip"),
    ],
)  # fmt: skip
def test_aliases_case_insensitive(alias: str, canonical: str) -> None:
    assert ENCODERS.canonical(alias) == canonical
    assert type(create_encoder(alias)) is ENCODERS.get(canonical).obj


def test_unknown_name_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown encoder 'sphergrid'; did you mean 'sphereC\+'"):
        create_encoder("sphergrid")
    with pytest.raises(ConfigError, match="unknown encoder 'zzz'"):
        get_encoder_config("zzz")


def test_unknown_config_key_rejected() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'encoder grid\.num_scale'; did you mean 'num_scales'",
    ):
        create_encoder("grid", num_scale=4)
    with pytest.raises(ConfigError, match=r"unknown config key 'encoder xyz\.num_scales'"):
        create_encoder("xyz", num_scales=4)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name: str) -> None:
    cfg = get_encoder_config(name)
    assert dataclasses.is_dataclass(cfg)
    fields = dataclasses.fields(cfg)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, fields[0].name, None)
    assert from_dict(type(cfg), to_dict(cfg)) == cfg


def test_overrides_are_coerced() -> None:
    enc = create_encoder("sphereC+", num_scales="16", r_min_deg="0.5")
    assert enc.out_dim == 96 and enc.config.r_min_deg == 0.5
    assert create_encoder("geoclip", sigmas=[1, 2]).out_dim == 1024
    assert create_encoder("geoclip", sigmas=[1, 2]).branches == 2
    assert create_encoder("sh", max_degree=3).out_dim == 16
    assert create_encoder("dfs", num_scales=3).out_dim == 4 * 9 + 12


@pytest.mark.parametrize(
    "name,overrides,match",
    [
        ("grid", {"num_scales": 0}, "num_scales must be >= 1"),
        ("sphereC", {"r_min_deg": 360.0}, r"r_min_deg \(360.0\) must be smaller than r_max_deg"),
        ("theory", {"r_min_deg": 0.0}, "r_min_deg must be > 0"),
        ("grid", {"freq_schedule": "log"}, "expected one of"),
        ("rbf", {"sigma_deg": -1.0}, "sigma_deg must be > 0"),
        ("rbf", {"num_anchors": 0}, "num_anchors must be >= 1"),
        ("rff", {"variance": -2.0}, "variance must be > 0"),
        ("rff", {"num_features": 0}, "num_features must be >= 1"),
        ("geoclip", {"sigmas": [1.0, -4.0]}, "sigmas must all be > 0"),
        ("geoclip", {"sigmas": []}, "at least one"),
        ("nerf", {"num_scales": 0}, r"num_scales must be in \[1, 32\]"),
        ("sh", {"max_degree": -1}, "max_degree must be >= 0"),
        ("grid", {"num_scales": 2.5}, "expected an integer"),
    ],
)
def test_invalid_configs(name: str, overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_encoder(name, **overrides)


def test_default_networks() -> None:
    nets = {n: create_encoder(n).default_network for n in NAMES}
    assert nets["wrap"] == "fcnet" and nets["spherical_harmonics"] == "siren"
    assert nets["geoclip"] == "multibranch" and nets["grid"] == "ffn" and nets["wrap_ffn"] == "ffn"


def test_every_module_registers_an_encoder() -> None:
    """A module of the subpackage that registers nothing is a forgotten import or dead code."""
    owners = {e.obj.__module__ for e in BASE_ENCODERS}
    helpers = {"geocsp.encoders.base", "geocsp.encoders.frequencies", "geocsp.encoders.time"}
    for info in pkgutil.iter_modules(enc_pkg.__path__):
        mod = f"geocsp.encoders.{info.name}"
        importlib.import_module(mod)
        assert mod in owners or mod in helpers, f"{mod} registers no encoder"


def test_markdown_table_lists_every_encoder() -> None:
    table = encoders_markdown_table()
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == NAMES
    assert "| `dfs` | `dft` | 4224 |" in table
