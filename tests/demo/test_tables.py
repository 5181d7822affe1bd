"""The tables' methods, settings validation, demo sections and run sharing between tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geocsp.demo.tables import TABLES, DemoSettings, load_demo_section, settings_for
from geocsp.errors import ConfigError
from geocsp.experiments.plan import plan_jobs


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
    assert demo["world"] == "default-calib" and len(demo["seeds"]) >= 3  # default + calib: same Table 1
    assert demo["ratios"] == [0.05, 0.1, 0.2, 1.0]
    assert quick["world"] == "small-calib"
    with pytest.raises(ConfigError, match="unknown preset"):
        load_demo_section("no-such-preset")


def test_settings_for_reads_the_section_and_applies_overrides() -> None:
    quick = settings_for(quick=True, jobs=1)
    section = load_demo_section("geoworld-quick")
    assert quick.preset == "geoworld-quick" and quick.world == section["world"]
    assert quick.seeds == tuple(section["seeds"]) and quick.ratios == tuple(section["ratios"])
    assert quick.jobs == 1 and quick.threads == 0
    s = settings_for("geoworld-demo", quick=True, seeds=2, ratios=(0.5,), world="small", jobs=3)
    assert (s.preset, s.seeds, s.ratios, s.world, s.jobs) == ("geoworld-demo", (0, 1), (0.5,), "small", 3)
    assert s.threads >= 1
    assert settings_for(jobs=1).preset == "geoworld-demo"
    with pytest.raises(ConfigError, match="ratios: expected distinct"):
        settings_for(quick=True, ratios=(0.1, 2.0))


def _world(tmp_path: Path, seed: int = 0) -> str:
    """A stand-in dataset directory: plan_jobs only reads its manifest."""
    d = tmp_path / f"world{seed}"
    d.mkdir(exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"format": "geocsp-dataset", "seed": seed}))
    return str(d)


def test_table3_dims_and_table2_objectives(tmp_path: Path) -> None:
    s = DemoSettings(preset="geoworld-quick", crossfit_folds=0, seeds=(0,), ratios=(0.1,))
    w = _world(tmp_path)
    pre3 = [j for j in plan_jobs(s, TABLES[3], w, tmp_path) if j.kind == "pretrain"]
    assert [j.config["model"]["dim"] for j in pre3] == [64, 128, 256, 512, 1024]
    pre2 = [j for j in plan_jobs(s, TABLES[2], w, tmp_path) if j.kind == "pretrain"]
    assert [j.config["objective"]["name"] for j in pre2] == ["csp-mc-bld", "csp-mc-bd", "csp-mc-bl", "csp-mc-b"]


def test_identical_runs_are_shared_between_tables(tmp_path: Path) -> None:
    s = DemoSettings(preset="geoworld-quick", crossfit_folds=0, seeds=(0,), ratios=(0.1,))
    w = _world(tmp_path)
    t1 = {j.run_dir for j in plan_jobs(s, TABLES[1], w, tmp_path)}
    t3 = plan_jobs(s, TABLES[3], w, tmp_path)
    same_dim = [j for j in t3 if j.method == "CSP-MC-BLD d=64" or j.method == "Sup. Only (grid)"]
    assert len(same_dim) == 3 and {j.run_dir for j in same_dim} <= t1  # quick preset: d = 64
    assert not {j.run_dir for j in t3 if "d=128" in j.method} & t1
