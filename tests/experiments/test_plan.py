"""Job planning: pre-training shared across ratios, dependencies, deterministic run names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geocsp.demo.tables import TABLES, DemoSettings
from geocsp.errors import ConfigError
from geocsp.experiments.plan import Method, plan_jobs, preset_kwargs


def _world(tmp_path: Path, seed: int = 0) -> str:
    """A stand-in dataset directory: plan_jobs only reads its manifest."""
    d = tmp_path / f"world{seed}"
    d.mkdir(exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"format": "geocsp-dataset", "seed": seed}))
    return str(d)


def test_plan_shares_pretraining_across_ratios(tmp_path: Path) -> None:
    s = DemoSettings(preset="geoworld-quick", crossfit_folds=0, seeds=(0, 1), ratios=(0.1, 1.0))
    world = _world(tmp_path)
    jobs = plan_jobs(s, TABLES[1], world, tmp_path)
    pre = [j for j in jobs if j.kind == "pretrain"]
    ft = [j for j in jobs if j.kind == "finetune"]
    assert len(pre) == 3 * 2  # MSE, NCE, MC x seeds, once each
    assert len(ft) == 6 * 2 * 2  # every method but Img. Only x ratios x seeds
    assert jobs[: len(pre)] == pre  # pre-training first
    objectives = {j.method: j.config["objective"]["name"] for j in pre}
    assert objectives == {"MSE": "mse", "CSP-NCE-BLD": "csp-nce-bld", "CSP-MC-BLD": "csp-mc-bld"}
    assert all(j.config["objective"]["args"] == {} for j in pre if j.method != "CSP-MC-BLD")
    assert next(j for j in pre if j.method == "CSP-MC-BLD").config["objective"]["args"]["tau_inbatch"] == 20.0
    for j in ft:
        assert j.config["ratio"] == j.ratio and j.config["seed"] == j.seed
        if j.method.startswith("Sup. Only") or j.method == "Class KDE":
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


def test_run_names_and_devices(tmp_path: Path) -> None:
    s = DemoSettings(preset="geoworld-quick", crossfit_folds=0, seeds=(3,), ratios=(0.05,), device="cpu")
    methods = (Method("sup"), Method("csp", pretrain=("objective.name=csp-mc-bld",)), Method("img", image_only=True))
    jobs = plan_jobs(s, methods, _world(tmp_path), tmp_path)
    assert [(j.kind, j.method, j.seed, j.ratio) for j in jobs] == [
        ("pretrain", "csp", 3, None), ("finetune", "sup", 3, 0.05), ("finetune", "csp", 3, 0.05)]
    pre, sup, csp = jobs
    assert Path(pre.run_dir).parent == tmp_path / "pretrain"
    assert Path(pre.run_dir).name.startswith("csp-mc-bld-d64-s3-")
    assert Path(sup.run_dir).name.startswith(f"sup-{sup.config['model']['encoder']}-d64-r0.050-s3-")
    assert Path(csp.run_dir).name.startswith("from-csp-mc-bld-d64-r0.050-s3-")
    assert all(j.config["device"] == "cpu" and j.config["quiet"] is True for j in jobs)
    # the device is not part of a run's identity: the same runs on another device
    gpu = plan_jobs(DemoSettings(preset="geoworld-quick", crossfit_folds=0, seeds=(3,), ratios=(0.05,), device="cuda"),
                    methods, _world(tmp_path), tmp_path)
    assert [j.run_dir for j in gpu] == [j.run_dir for j in jobs]


def test_preset_kwargs() -> None:
    assert preset_kwargs("geoworld-quick") == {"preset": "geoworld-quick"}
    assert preset_kwargs("my/run.yaml") == {"config_file": "my/run.yaml"}
    assert preset_kwargs("run.yml") == {"config_file": "run.yml"}


def test_crossfit_reaches_every_finetuning_run_and_names_it(tmp_path: Path) -> None:
    world = _world(tmp_path)
    off = plan_jobs(DemoSettings(preset="geoworld-quick", seeds=(0,), ratios=(0.1,), crossfit_folds=0), TABLES[1],
                    world, tmp_path)
    on = plan_jobs(DemoSettings(preset="geoworld-quick", seeds=(0,), ratios=(0.1,), crossfit_folds=3),
                   TABLES[1], world, tmp_path)
    assert all(j.config["crossfit_folds"] == 0 for j in off if j.kind == "finetune")
    assert all(j.config["crossfit_folds"] == 3 for j in on if j.kind == "finetune")
    pre = [j.run_dir for j in off if j.kind == "pretrain"]
    assert pre == [j.run_dir for j in on if j.kind == "pretrain"]  # pre-training is shared
    assert not {j.run_dir for j in off if j.kind == "finetune"} & {j.run_dir for j in on if j.kind == "finetune"}
    with pytest.raises(ConfigError, match="--crossfit: expected auto, 0"):
        DemoSettings(crossfit_folds=1)
    with pytest.raises(ConfigError, match="resolve crossfit_folds 'auto' on the dataset first"):
        plan_jobs(DemoSettings(preset="geoworld-quick", seeds=(0,), ratios=(0.1,)), TABLES[1], world, tmp_path)
