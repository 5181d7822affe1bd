"""The paper's protocol on GeoWorld: methods × label ratios × seeds (spec §5, §6, §8).

Pre-training runs once per (method, seed) and is shared by every ratio; fine-tuning runs
per (method, ratio, seed) and evaluates the fused top-1 on ``val`` with the few-shot image
classifier of that ratio (``probs_key="auto"`` -> ``ratio0.050`` ...). Every run is a
training run directory named by a hash of its resolved config, so rerunning reuses
finished runs and resumes interrupted ones. Runs go to a pool of worker processes
(``jobs``), each with ``threads`` torch threads; results do not depend on the scheduling.

Used by ``geocsp demo`` (Table 1) and ``geocsp bench paper`` (Tables 1-3).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geocsp.config import load_yaml, to_dict
from geocsp.errors import ConfigError

BASELINE = "Sup. Only (grid)"
MAIN = "CSP-MC-BLD"


@dataclass(frozen=True)
class Method:
    """One row of a table.

    Args:
        name: the row label (paper name).
        pretrain: overrides (``key.path=value``) of the preset's ``pretrain`` section, or None
            for no pre-training ("Sup. Only": fine-tuning from random initialisation).
        finetune: overrides of the preset's ``finetune`` section.
        image_only: no location prior: the row reports the image classifier alone.
    """

    name: str
    pretrain: tuple[str, ...] | None = None
    finetune: tuple[str, ...] = ()
    image_only: bool = False


def _objective(name: str) -> tuple[str, ...]:
    return (f"objective.name={name}",)


def _dim(d: int) -> tuple[str, ...]:
    return (f"model.dim={d}",)


TABLES: dict[int, tuple[Method, ...]] = {
    1: (
        Method("Img. Only", image_only=True),
        Method("Sup. Only (wrap)", finetune=("model.encoder=wrap", "model.encoder_args={}",
                                             "model.network=fcnet", "model.network_args={}")),
        Method(BASELINE),
        Method("MSE", pretrain=(*_objective("mse"), "objective.args={}")),
        Method("CSP-NCE-BLD", pretrain=(*_objective("csp-nce-bld"), "objective.args={}")),
        Method(MAIN, pretrain=_objective("csp-mc-bld")),
    ),
    2: (
        Method(BASELINE),
        Method("CSP-MC-BLD", pretrain=_objective("csp-mc-bld")),
        Method("CSP-MC-BD", pretrain=_objective("csp-mc-bd")),
        Method("CSP-MC-BL", pretrain=_objective("csp-mc-bl")),
        Method("CSP-MC-B", pretrain=_objective("csp-mc-b")),
    ),
    3: (
        Method(BASELINE),
        *(Method(f"CSP-MC-BLD d={d}", pretrain=(*_objective("csp-mc-bld"), *_dim(d))) for d in (64, 128, 256, 512, 1024)),
    ),
}
"""The methods of the paper's Tables 1-3 (spec §8); Table 1's objective args (τ0) come from the preset."""

TABLE_TITLES = {1: "Table 1: fused top-1 on GeoWorld val", 2: "Table 2: ablation of the CSP-MC terms",
                3: "Table 3: location embedding dimension d (CSP-MC-BLD)"}
TABLE_GAIN = {1: (MAIN, BASELINE), 2: (MAIN, BASELINE), 3: ("CSP-MC-BLD d=256", BASELINE)}


@dataclass(frozen=True)
class DemoSettings:
    """What to run (the ``demo:`` section of a demo preset, plus command-line overrides).

    Args:
        preset: training preset (``src/geocsp/presets/<name>.yaml``) or a YAML path; its
            ``pretrain`` / ``finetune`` sections configure every run.
        world: GeoWorld preset (``small``, ``default`` ...).
        world_seed: GeoWorld seed.
        seeds: training seeds (one run per seed).
        ratios: label ratios λ in (0, 1].
        device: ``auto``, ``cpu``, ``cuda`` ...
        jobs: worker processes (1 = in this process).
        threads: torch threads per worker (0 = leave torch's default).
        figure_ratio: the ratio whose runs the range figure shows (closest stored one).
    """

    preset: str = "geoworld-demo"
    world: str = "default"
    world_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    ratios: tuple[float, ...] = (0.05, 0.1, 0.2, 1.0)
    device: str = "cpu"
    jobs: int = 1
    threads: int = 0
    figure_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: expected distinct integers, got {list(self.seeds)}")
        if not self.ratios or any(not 0 < r <= 1 for r in self.ratios) or len(set(self.ratios)) != len(self.ratios):
            raise ConfigError(f"ratios: expected distinct label ratios in (0, 1], got {list(self.ratios)}")
        if self.jobs < 1 or self.threads < 0:
            raise ConfigError(f"jobs must be >= 1 and threads >= 0, got jobs={self.jobs}, threads={self.threads}")


def load_demo_section(preset: str) -> dict[str, Any]:
    """The ``demo:`` section of a training preset name or YAML path ({} when absent).

    Raises:
        ConfigError: on an unknown preset or a section that is not a mapping.
    """
    from geocsp.training.presets import PRESETS

    path = Path(preset) if Path(preset).suffix in (".yaml", ".yml") else PRESETS.get(preset).obj
    section = load_yaml(path).get("demo", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: section 'demo' must be a mapping")
    return section


def _preset_kwargs(preset: str) -> dict[str, Any]:
    if Path(preset).suffix in (".yaml", ".yml"):
        return {"config_file": preset}
    return {"preset": preset}


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


@dataclass(frozen=True)
class Job:
    """One training run: ``kind`` ``pretrain`` or ``finetune``, its resolved config dict."""

    kind: str
    method: str
    seed: int
    ratio: float | None
    config: dict[str, Any]
    run_dir: str
    init: str | None = None
    deps: tuple[str, ...] = field(default=())


def plan_jobs(settings: DemoSettings, methods: Sequence[Method], data: str, runs: Path) -> list[Job]:
    """Every pre-training and fine-tuning run the table needs, pre-training first.

    Runs are named by what they are plus a hash of the resolved config, the dataset's
    manifest (so a ``runs`` folder shared between two worlds never mixes them) and the
    geocsp version (``pretrain/<objective>-d<dim>-s<seed>-<hash>``,
    ``finetune/<from-...|sup-...>-r<λ>-s<seed>-<hash>``), so identical runs of two tables
    sharing ``runs`` (e.g. Sup. Only (grid), or Table 3's d = 128 row and Table 1's
    CSP-MC-BLD) map to the same directory.
    """
    from geocsp import __version__
    from geocsp.training import FinetuneConfig, PretrainConfig, resolve_config

    world = {"manifest": _hash(json.loads((Path(data) / "manifest.json").read_text())),
             "geocsp": __version__}
    src = _preset_kwargs(settings.preset)
    common = [f"device={settings.device}", "quiet=true"]
    pre_jobs, ft_jobs = {}, []
    for m in methods:
        if m.image_only:
            continue
        for seed in settings.seeds:
            init = None
            if m.pretrain is not None:
                cfg = to_dict(resolve_config(PretrainConfig, stage="pretrain", **src,
                                             overrides=[*m.pretrain, *common, f"seed={seed}"]))
                key = _hash({**world, **{k: v for k, v in cfg.items() if k not in ("device", "quiet")}})
                name = f"{cfg['objective']['name']}-d{cfg['model']['dim']}"
                init = str(runs / "pretrain" / f"{name}-s{seed}-{key}")
                pre_jobs[init] = Job("pretrain", m.name, seed, None, cfg, init)
            for ratio in settings.ratios:
                cfg = to_dict(resolve_config(FinetuneConfig, stage="finetune", **src,
                                             overrides=[*m.finetune, *common, f"seed={seed}", f"ratio={ratio}"]))
                if init is not None:
                    cfg["init"] = init
                key = _hash({**world, **{k: v for k, v in cfg.items() if k not in ("device", "quiet")}})
                base = f"from-{name}" if init else f"sup-{cfg['model']['encoder']}-d{cfg['model']['dim']}"
                run = str(runs / "finetune" / f"{_slug(base)}-r{ratio:.3f}-s{seed}-{key}")
                ft_jobs.append(Job("finetune", m.name, seed, ratio, cfg, run, init, (init,) if init else ()))
    return [*pre_jobs.values(), *ft_jobs]


def _finished(job: Job) -> dict[str, Any] | None:
    """The metrics of a run that already finished with this config, else None."""
    run = Path(job.run_dir)
    metrics, cfg = run / "metrics.json", run / "config.yaml"
    if not (metrics.is_file() and cfg.is_file()):
        return None
    from geocsp.training.config import config_dict_for_compare

    if config_dict_for_compare(load_yaml(cfg)) != config_dict_for_compare(job.config):
        return None
    result: dict[str, Any] = json.loads(metrics.read_text())
    return result


def run_job(job: Job, data: str, threads: int = 0) -> dict[str, Any]:
    """Run (or reuse) one job; returns its metrics dict. Top-level so worker processes can run it."""
    done = _finished(job)
    if done is not None:
        return done
    import torch

    if threads > 0:
        torch.set_num_threads(threads)  # the pool's per-worker share of the cores
    from geocsp.config import from_dict
    from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain

    if job.kind == "pretrain":
        return pretrain(from_dict(PretrainConfig, job.config), data, job.run_dir)
    return finetune(from_dict(FinetuneConfig, job.config), data, job.run_dir)


def execute(jobs: Sequence[Job], data: str, jobs_n: int = 1, threads: int = 0,
            progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` respecting dependencies; returns metrics by run dir.

    With ``jobs_n > 1`` the runs go to a spawn-started process pool; a fine-tuning run is
    submitted once its pre-training run has finished.
    """
    say = progress or (lambda _msg: None)
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()

    def note(job: Job, res: dict[str, Any]) -> None:
        results[job.run_dir] = res
        top1 = res.get("fused", {}).get("top1")
        what = f"fused top-1 {top1:.4f}" if top1 is not None else "pre-trained"
        say(f"[{len(results)}/{len(jobs)} {time.perf_counter() - t0:6.1f}s] {job.kind:8s} {job.method}"
            f"{'' if job.ratio is None else f' λ={job.ratio:g}'} seed {job.seed}: {what}")

    if jobs_n <= 1:
        for job in jobs:
            note(job, run_job(job, data, threads))
        return results
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pending = list(jobs)
    with ProcessPoolExecutor(jobs_n, mp_context=mp.get_context("spawn")) as pool:
        running: dict[Any, Job] = {}
        while pending or running:
            ready = [j for j in pending if all(d in results for d in j.deps)]
            for j in ready:
                pending.remove(j)
                running[pool.submit(run_job, j, data, threads)] = j
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                note(running.pop(fut), fut.result())
    return results


def collect_records(jobs: Sequence[Job], results: dict[str, dict[str, Any]],
                    methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Per-(method, ratio, seed) fused metrics; ``image_only`` methods read the image block
    of the first fine-tuning run at the same ratio and seed (the few-shot classifier).

    Raises:
        ConfigError: when a run evaluated with the wrong image classifier (not the ratio's).
    """
    records, image = [], {}
    for job in jobs:
        if job.kind != "finetune":
            continue
        m = results[job.run_dir]
        expected = f"ratio{job.ratio:.3f}"
        if m.get("probs_key") != expected:
            raise ConfigError(f"{job.run_dir}: evaluated with image probs '{m.get('probs_key')}', expected '{expected}'")
        records.append(_record(job.method, job.ratio, job.seed, m["fused"]))
        image.setdefault((job.ratio, job.seed), m["image"])
    for meth in methods:
        if meth.image_only:
            records += [_record(meth.name, q, s, blk) for (q, s), blk in image.items()]
    order = {m.name: i for i, m in enumerate(methods)}
    return sorted(records, key=lambda r: (order[r["method"]], r["ratio"], r["seed"]))


def _record(method: str, ratio: float | None, seed: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"method": method, "ratio": float(ratio or 0.0), "seed": int(seed),
            "top1": float(block["top1"]), "top3": float(block["top3"]), "mrr": float(block["mrr"])}


def default_jobs(device: str) -> tuple[int, int]:
    """(worker processes, threads each): one process per core up to 8 on CPU, 1 on a GPU."""
    if device.startswith("cuda"):
        return 1, 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = max(1, min(cores, 8))
    return n, max(1, cores // n)


def machine_info() -> dict[str, Any]:
    """Cores available, CPU model and torch version (for the results' provenance)."""
    import platform

    import torch

    model = platform.processor() or ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        model = names[0] if names else model
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "cpu": model, "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def run_table(settings: DemoSettings, table: int, out: str | Path, runs: str | Path | None = None,
              progress: Callable[[str], None] | None = None, figures: bool = True) -> dict[str, Any]:
    """Run one of the paper's tables on GeoWorld and write results (+ figures) to ``out``.

    Args:
        settings: what to run.
        table: 1, 2 or 3 (:data:`TABLES`).
        out: output directory: ``results.json|csv|md``, ``*.png``; runs in ``out/runs``.
        runs: directory of the training runs (default ``out/runs``); tables sharing it
            reuse identical runs.
        progress: called with one line per finished run.
        figures: also write the PNG figures.

    Returns:
        ``{"rows", "records", "paths", "world", "seconds"}``.

    Raises:
        ConfigError: on an unknown table or preset.
    """
    from geocsp.data.geoworld import make_world
    from geocsp.demo.report import aggregate, write_results

    if table not in TABLES:
        raise ConfigError(f"table must be one of {sorted(TABLES)}, got {table!r}")
    t0 = time.perf_counter()
    out = Path(out)
    runs_dir = Path(runs) if runs is not None else out / "runs"
    world = make_world(settings.world, seed=settings.world_seed)
    methods = TABLES[table]
    jobs = plan_jobs(settings, methods, str(world), runs_dir.resolve())
    results = execute(jobs, str(world), settings.jobs, settings.threads, progress)
    records = collect_records(jobs, results, methods)
    rows = aggregate(records)
    meta = {"table": table, "title": TABLE_TITLES[table], "settings": to_dict(settings), "world": str(world),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine_info(),
            "seconds_runs": round(time.perf_counter() - t0, 1), "records": records}
    paths = dict(write_results(out, rows, title=TABLE_TITLES[table], gain=TABLE_GAIN[table], meta=meta))
    if figures:
        from geocsp.demo.figures import make_figures

        paths.update(make_figures(out, Path(world), jobs, rows, settings, table))
    return {"rows": rows, "records": records, "paths": paths, "world": world,
            "seconds": time.perf_counter() - t0}
