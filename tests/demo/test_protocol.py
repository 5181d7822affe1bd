"""Job planning, settings validation, record collection and the figure's class rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geocsp.demo.figures import choose_class
from geocsp.demo.protocol import (
    TABLES,
    DemoSettings,
    Job,
    Method,
    collect_records,
    load_demo_section,
    plan_jobs,
)
from geocsp.errors import ConfigError


@pytest.mark.parametrize(("kw", "match"), [
    ({"seeds": ()}, "seeds: expected distinct"),
    ({"seeds": (0, 0)}, "seeds: expected distinct"),
    ({"ratios": (0.0, 0.1)}, r"ratios: expected distinct label ratios in \(0, 1\]"),
    ({"ratios": (0.1, 1.5)}, "ratios"),
    ({"jobs": 0}, "jobs must be >= 1"),
])
def test_settings_validation(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DemoSettings(**kw)


def test_bundled_presets_have_demo_sections() -> None:
    demo, quick = load_demo_section("geoworld-demo"), load_demo_section("geoworld-quick")
    assert demo["world"] == "default" and len(demo["seeds"]) >= 3
    assert demo["ratios"] == [0.05, 0.1, 0.2, 1.0]
    assert quick["world"] == "small"
    with pytest.raises(ConfigError, match="unknown preset"):
        load_demo_section("no-such-preset")


def _world(tmp_path: Path, seed: int = 0) -> str:
    """A stand-in dataset directory: plan_jobs only reads its manifest."""
    d = tmp_path / f"world{seed}"
    d.mkdir(exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"format": "geocsp-dataset", "seed": seed}))
    return str(d)


def test_plan_shares_pretraining_across_ratios(tmp_path: Path) -> None:
    s = DemoSettings(preset="geoworld-quick", seeds=(0, 1), ratios=(0.1, 1.0))
    world = _world(tmp_path)
    jobs = plan_jobs(s, TABLES[1], world, tmp_path)
    pre = [j for j in jobs if j.kind == "pretrain"]
    ft = [j for j in jobs if j.kind == "finetune"]
    assert len(pre) == 3 * 2  # MSE, NCE, MC x seeds, once each
    assert len(ft) == 5 * 2 * 2  # every method but Img. Only x ratios x seeds
    assert jobs[: len(pre)] == pre  # pre-training first
    objectives = {j.method: j.config["objective"]["name"] for j in pre}
    assert objectives == {"MSE": "mse", "CSP-NCE-BLD": "csp-nce-bld", "CSP-MC-BLD": "csp-mc-bld"}
    assert all(j.config["objective"]["args"] == {} for j in pre if j.method != "CSP-MC-BLD")
    assert next(j for j in pre if j.method == "CSP-MC-BLD").config["objective"]["args"]["tau_inbatch"] == 20.0
    for j in ft:
        assert j.config["ratio"] == j.ratio and j.config["seed"] == j.seed
        if j.method.startswith("Sup. Only"):
            assert j.init is None and j.deps == ()
        else:
            (dep,) = j.deps
            assert dep == j.init == j.config["init"]
            assert dep in {p.run_dir for p in pre if p.method == j.method and p.seed == j.seed}
    wrap = next(j for j in ft if j.method == "Sup. Only (wrap)")
    assert wrap.config["model"]["encoder"] == "wrap" and wrap.config["model"]["network"] == "fcnet"
    assert len({j.run_dir for j in jobs}) == len(jobs)
    # deterministic names: the same plan twice gives the same run directories
    assert [j.run_dir for j in plan_jobs(s, TABLES[1], world, tmp_path)] == [j.run_dir for j in jobs]
    # another world never reuses these runs
    other = {j.run_dir for j in plan_jobs(s, TABLES[1], _world(tmp_path, 1), tmp_path)}
    assert not other & {j.run_dir for j in jobs}


def test_table3_dims_and_table2_objectives(tmp_path: Path) -> None:
    s = DemoSettings(preset="geoworld-quick", seeds=(0,), ratios=(0.1,))
    w = _world(tmp_path)
    pre3 = [j for j in plan_jobs(s, TABLES[3], w, tmp_path) if j.kind == "pretrain"]
    assert [j.config["model"]["dim"] for j in pre3] == [64, 128, 256, 512, 1024]
    pre2 = [j for j in plan_jobs(s, TABLES[2], w, tmp_path) if j.kind == "pretrain"]
    assert [j.config["objective"]["name"] for j in pre2] == ["csp-mc-bld", "csp-mc-bd", "csp-mc-bl", "csp-mc-b"]


def _metrics(top1: float, key: str) -> dict:
    blk = {"top1": top1, "top3": top1 + 0.1, "mrr": top1 + 0.05}
    return {"fused": blk, "image": {"top1": 0.3, "top3": 0.4, "mrr": 0.35}, "probs_key": key}


def test_collect_records_uses_the_ratio_classifier() -> None:
    methods = (Method("Img. Only", image_only=True), Method("Sup"))
    jobs = [Job("finetune", "Sup", s, q, {}, f"r{q}{s}") for q in (0.05, 1.0) for s in (0, 1)]
    results = {j.run_dir: _metrics(0.5 + j.ratio, f"ratio{j.ratio:.3f}") for j in jobs}
    recs = collect_records(jobs, results, methods)
    assert [(r["method"], r["ratio"], r["seed"]) for r in recs] == [
        ("Img. Only", 0.05, 0), ("Img. Only", 0.05, 1), ("Img. Only", 1.0, 0), ("Img. Only", 1.0, 1),
        ("Sup", 0.05, 0), ("Sup", 0.05, 1), ("Sup", 1.0, 0), ("Sup", 1.0, 1)]
    assert recs[0]["top1"] == 0.3 and recs[-1]["top1"] == 1.5
    results[jobs[0].run_dir]["probs_key"] = "default"  # evaluated with the 100 % classifier
    with pytest.raises(ConfigError, match=r"image probs 'default', expected 'ratio0.050'"):
        collect_records(jobs, results, methods)


def test_choose_class_rule() -> None:
    counts = np.array([500, 100, 50, 60, 55, 2, 3, 52, 58])
    range_km = np.array([1000, 1000, 300, 900, 1000, 1000, 1000, 3000, 1100], dtype=float)
    weights = np.array([[1.0, 0, 0]] * 9)
    weights[4] = [0.5, 0.3, 0.2]  # two-population range: not distinct
    # middle third of counts: 52..60 -> classes 2, 3, 4, 7, 8; 4 fails the weight test;
    # median range 1000 km -> class 3 (900) vs 8 (1100): |log| distance 0.105 vs 0.095 -> 8
    assert choose_class(counts, range_km, weights) == 8


def test_identical_runs_are_shared_between_tables(tmp_path: Path) -> None:
    s = DemoSettings(preset="geoworld-quick", seeds=(0,), ratios=(0.1,))
    w = _world(tmp_path)
    t1 = {j.run_dir for j in plan_jobs(s, TABLES[1], w, tmp_path)}
    t3 = plan_jobs(s, TABLES[3], w, tmp_path)
    same_dim = [j for j in t3 if j.method == "CSP-MC-BLD d=64" or j.method == "Sup. Only (grid)"]
    assert len(same_dim) == 3 and {j.run_dir for j in same_dim} <= t1  # quick preset: d = 64
    assert not {j.run_dir for j in t3 if "d=128" in j.method} & t1
