"""Run names, dataset identity and machine information."""

from __future__ import annotations

import json
from pathlib import Path

from geocsp import __version__
from geocsp.experiments.provenance import (
    available_cores,
    config_hash,
    dataset_identity,
    finetune_run_name,
    machine_info,
    pretrain_run_name,
    run_key,
    slug,
)


def test_config_hash_is_stable_and_order_independent() -> None:
    a = config_hash({"b": 1, "a": [1, 2], "p": Path("x")})
    assert a == config_hash({"a": [1, 2], "p": Path("x"), "b": 1})
    assert len(a) == 10 and all(c in "0123456789abcdef" for c in a)
    assert a != config_hash({"b": 2, "a": [1, 2], "p": Path("x")})
    assert config_hash({}) == "44136fa355"  # sha256 of "{}"


def test_slug() -> None:
    assert slug("CSP-MC-BLD d=64") == "csp-mc-bld-d-64"
    assert slug("Sup. Only (grid)") == "sup--only--grid"


def test_dataset_identity_and_run_key(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"seed": 0}))
    ident = dataset_identity(tmp_path)
    assert ident == {"manifest": config_hash({"seed": 0}), "geocsp": __version__}
    cfg = {"seed": 1, "model": {"dim": 64}, "device": "cpu", "quiet": True}
    key = run_key(ident, cfg)
    assert key == run_key(ident, {**cfg, "device": "cuda", "quiet": False})  # runtime keys do not count
    assert key != run_key(ident, {**cfg, "seed": 2})
    assert key != run_key({**ident, "manifest": "other"}, cfg)


def test_run_names() -> None:
    pre = {"objective": {"name": "csp-mc-bld"}, "model": {"dim": 64}}
    assert pretrain_run_name(pre, 2, "abc") == "csp-mc-bld-d64-s2-abc"
    ft = {"model": {"encoder": "sphere_grid", "dim": 128}}
    assert finetune_run_name(ft, 0.05, 1, "k") == "sup-sphere-grid-d128-r0.050-s1-k"
    assert finetune_run_name(ft, 1.0, 0, "k", pretrained="csp-mc-bld-d64") == "from-csp-mc-bld-d64-r1.000-s0-k"


def test_machine_info() -> None:
    info = machine_info()
    assert set(info) == {"cores", "cpu", "torch", "cuda"}
    assert info["cores"] == available_cores() >= 1
    assert isinstance(info["cpu"], str) and isinstance(info["torch"], str)
