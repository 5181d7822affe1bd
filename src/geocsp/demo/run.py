"""Run one of the paper's tables: plan, execute, aggregate, write the results and figures.

Pre-training runs once per (method, seed) and is shared by every ratio; fine-tuning runs
per (method, ratio, seed) and evaluates the fused top-1 on ``val`` with the few-shot image
classifier of that ratio (``probs_key="auto"`` -> ``ratio0.050`` ...). Every run is a
training run directory named by a hash of its resolved config, so rerunning reuses
finished runs and resumes interrupted ones (:mod:`geocsp.experiments`).

Used by ``geocsp demo`` (Table 1) and ``geocsp bench paper`` (Tables 1-3).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.checkpoints import ENCODER_DIR, load_encoder, load_prior
from geocsp.config import from_dict, to_dict
from geocsp.data import GeoDataset, load_dataset
from geocsp.data.geoworld import load_truth, make_world
from geocsp.data.splits import load_or_make_subset
from geocsp.demo.compare import compare
from geocsp.demo.figures import (
    bar_figure,
    choose_class,
    embedding_figure,
    gain_figure,
    prior_scorer,
    range_figure,
    zero_shot_scorer,
)
from geocsp.demo.report import aggregate, collect_records, write_results
from geocsp.demo.tables import (
    BASELINE,
    MAIN,
    TABLE_GAIN,
    TABLE_TITLES,
    TABLES,
    DemoSettings,
    is_geoworld,
)
from geocsp.errors import ConfigError, DatasetError
from geocsp.experiments.execute import execute
from geocsp.experiments.plan import Job, Method, plan_jobs, resolve_crossfit
from geocsp.experiments.provenance import machine_info
from geocsp.io import load_checkpoint_dir
from geocsp.nets import LocationEncoder
from geocsp.training import FinetuneConfig, evaluate
from geocsp.training.kde import check_kde_data
from geocsp.training.zeroshot import check_zeroshot_calib


def run_table(settings: DemoSettings, table: int, out: str | Path, runs: str | Path | None = None,
              progress: Callable[[str], None] | None = None, figures: bool = True,
              methods: Sequence[Method] | None = None) -> dict[str, Any]:
    """Run one of the paper's tables on GeoWorld (or ``settings.data``) and write results to ``out``.

    Besides the paper's fused top-1 table, the results hold the calibrated fusion's table and
    the paired per-seed differences of every method against Img. Only and every Sup. Only
    row, for both fusions (:mod:`geocsp.demo.compare`).

    Args:
        settings: what to run.
        table: 1, 2 or 3 (:data:`~geocsp.demo.tables.TABLES`).
        out: output directory: ``results.json|csv|md``, ``*.png``; runs in ``out/runs``.
        runs: directory of the training runs (default ``out/runs``); tables sharing it
            reuse identical runs.
        progress: called with one line per finished run.
        figures: also write the PNG figures (the range maps need GeoWorld's true ranges and
            are skipped, with a note, on other data).
        methods: the rows to run instead of the table's (e.g. from
            :func:`~geocsp.demo.tables.methods_by_name`).

    Returns:
        ``{"rows", "records", "comparisons", "notes", "paths", "world", "seconds"}``.

    Raises:
        ConfigError: on an unknown table or preset, or methods that produce no run.
        DatasetError: when the data lacks what the methods need (checked before any run).
    """
    if table not in TABLES:
        raise ConfigError(f"table must be one of {sorted(TABLES)}, got {table!r}")
    t0 = time.perf_counter()
    out = Path(out)
    runs_dir = Path(runs) if runs is not None else out / "runs"
    world = Path(settings.data) if settings.data is not None else make_world(settings.world, seed=settings.world_seed)
    methods = tuple(methods) if methods else TABLES[table]
    ds = load_dataset(world)
    check_protocol_data(ds, methods, settings.ratios)
    settings = dataclasses.replace(settings, crossfit_folds=resolve_crossfit(settings.crossfit_folds, ds,
                                                                             settings.ratios))
    jobs = plan_jobs(settings, methods, str(world), runs_dir.resolve())
    check_job_data(jobs, ds)
    results = with_calibrated(jobs, execute(jobs, str(world), settings.jobs, settings.threads, progress), world)
    records = collect_records(jobs, results, methods)
    rows = aggregate(records)
    comparisons = compare(records)
    notes = uncalibrated_notes(results)
    if figures and not is_geoworld(world):
        notes.append(f"range maps skipped: {world} is not a GeoWorld (they need its true ranges, truth.npz)")
    title = table_title(table, world)
    meta = {"table": table, "title": title, "settings": to_dict(settings), "world": str(world),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine_info(),
            "seconds_runs": round(time.perf_counter() - t0, 1), "records": records}
    paths = dict(write_results(out, rows, title=title, gain=TABLE_GAIN[table], meta=meta,
                               comparisons=comparisons, notes=notes))
    if figures:
        paths.update(make_figures(out, world, jobs, rows, settings, table))
    return {"rows": rows, "records": records, "comparisons": comparisons, "notes": notes, "paths": paths,
            "world": world, "seconds": time.perf_counter() - t0}


def table_title(table: int, world: Path) -> str:
    """The table's title, naming the dataset instead of GeoWorld when ``world`` is not one."""
    return TABLE_TITLES[table] if is_geoworld(world) else TABLE_TITLES[table].replace("GeoWorld", world.name)


def uncalibrated_notes(results: dict[str, dict[str, Any]]) -> list[str]:
    """One note per distinct reason some runs have no calibrated fusion (their cells read ``–``)."""
    whys = {(m.get("fusion") or {}).get("why") for m in results.values()
            if m is not None and m.get("fused") is not None and m.get("fused_calibrated") is None}
    return [f"calibrated fusion missing in some runs: {w}" for w in sorted(w for w in whys if w)]


def check_protocol_data(ds: GeoDataset, methods: Sequence[Method], ratios: Sequence[float]) -> None:
    """Refuse, before any run, data the protocol cannot use (one line naming split and key).

    Needs a labelled ``train`` split, a labelled ``val`` split with image probabilities
    ``ratio{λ:.3f}`` for every λ (``default`` also serves λ = 1), the same keys in a
    ``calib`` split when there is one, and train image features for pre-trained methods.

    Args:
        ds: the dataset.
        methods: the methods to run.
        ratios: the label ratios.

    Raises:
        DatasetError: on a missing split, labels, probabilities or features.
        ConfigError: when only image-only methods are asked for (they read the other runs).
    """
    if all(m.image_only for m in methods):
        raise ConfigError("--methods: img-only reads the fine-tuning runs' evaluation; add at least one other method")
    for name in ("train", "val"):
        if name not in ds:
            raise DatasetError(f"{ds.root}: no '{name}' split; the protocol needs labelled train and val splits")
        labels = ds.split(name).labels
        if labels is None or not (labels >= 0).any():
            raise DatasetError(f"{ds.root}: split '{name}' has no labelled rows")
    for name in ("val", "calib"):
        if name not in ds:
            continue
        keys = ds.split(name).prob_keys
        for q in ratios:
            if f"ratio{q:.3f}" not in keys and not (q == 1.0 and "default" in keys):
                raise DatasetError(f"{ds.root}: split '{name}' has no image probabilities 'ratio{q:.3f}' for "
                                   f"λ={q:g} (stored: {keys}); add them (docs/protocol.md) or choose --ratios")
    if any(m.pretrain is not None for m in methods) and ds.split("train").features is None:
        raise DatasetError(f"{ds.root}: split 'train' has no image features, which pre-training needs; "
                           "extract them (docs/features.md) or pass --methods img-only,sup-wrap,sup-grid")


def check_job_data(jobs: Sequence[Job], ds: GeoDataset) -> None:
    """Refuse, before any run, fine-tuning settings the data cannot serve (a calib split they need).

    Raises:
        ConfigError: one line naming the setting (``kde.shrink=cv``, ``zeroshot_pool``).
    """
    for job in jobs:
        if job.kind == "finetune":
            cfg = from_dict(FinetuneConfig, job.config)
            check_kde_data(cfg.kde, ds, cfg.ratio)
            check_zeroshot_calib(cfg, ds)


def with_calibrated(jobs: Sequence[Job], results: dict[str, dict[str, Any]], data: Path) -> dict[str, dict[str, Any]]:
    """Results in which every fine-tuning run has ``fused_calibrated`` (runs reused from before it).

    A run finished by an earlier geocsp has no calibrated fusion in its ``metrics.json``; it
    is evaluated once more (:func:`geocsp.training.evaluate`, its own ``eval-*.json`` file; the
    run's ``metrics.json`` is never touched) and the two blocks are added.

    Args:
        jobs: the planned jobs.
        results: metrics by run directory.
        data: the dataset directory.

    Returns:
        The completed results (a new dict).
    """
    out = dict(results)
    for job in jobs:
        m = out.get(job.run_dir)
        if job.kind == "finetune" and m is not None and "fused_calibrated" not in m:
            e = evaluate(job.run_dir, data, overwrite=True)
            out[job.run_dir] = {**m, "fused_calibrated": e["fused_calibrated"], "fusion": e["fusion"]}
    return out


def find_job(jobs: Sequence[Job], kind: str, method: str, seed: int, ratio: float | None = None) -> Job | None:
    """The first job of this kind, method and seed (and ratio, when given), else None.

    Args:
        jobs: planned jobs.
        kind: ``pretrain`` or ``finetune``.
        method: the method name.
        seed: the seed.
        ratio: the label ratio; None matches any.

    Returns:
        The job or None.
    """
    for j in jobs:
        if j.kind == kind and j.method == method and j.seed == seed and (ratio is None or j.ratio == ratio):
            return j
    return None


def make_figures(out: Path, world: Path, jobs: Sequence[Job], rows: Sequence[dict[str, Any]],
                 settings: DemoSettings, table: int) -> dict[str, Path]:
    """Write the figures a table supports.

    The range and embedding figures need Sup. Only (grid) and CSP-MC-BLD runs (Table 1);
    they use the first seed and the stored ratio closest to ``settings.figure_ratio``.

    Args:
        out: output directory.
        world: the GeoWorld dataset directory.
        jobs: the table's planned (and finished) jobs.
        rows: aggregated rows.
        settings: the table's settings.
        table: the table number.

    Returns:
        ``{name: path}`` of the written figures.
    """
    paths = {"bar": bar_figure(rows, out / "table.png", table_title(table, world)),
             "gain": gain_figure(rows, BASELINE, out / "gain.png")}
    seed = settings.seeds[0]
    ratio = min(settings.ratios, key=lambda q: (abs(q - settings.figure_ratio), q))
    pre, sup, csp = (find_job(jobs, "pretrain", MAIN, seed), find_job(jobs, "finetune", BASELINE, seed, ratio),
                     find_job(jobs, "finetune", MAIN, seed, ratio))
    if pre is None:
        return paths
    encoder = load_encoder(pre.run_dir)
    paths["embedding"] = embedding_figure(encoder, out / "embedding_pca.png",
                                          f"pre-trained {MAIN} location embedding (PCA → RGB), seed {seed}")
    if sup is None or csp is None or not is_geoworld(world):
        return paths
    paths["range"] = _range_maps(out / "range_maps.png", world, encoder, pre, sup, csp)
    return paths


def _range_maps(out: Path, world: Path, encoder: LocationEncoder, pre: Job, sup: Job, csp: Job) -> Path:
    """The range figure of the chosen class from the figure runs (``csp``'s ratio and seed)."""
    ratio, seed = float(csp.ratio or 0.0), csp.seed
    truth = load_truth(world)
    ds = load_dataset(world)
    cls = choose_class(truth.train_counts, truth.range_km, truth.weights)
    train = ds.split("train")
    labels, features = train.labels, train.features
    if labels is None or features is None:
        raise DatasetError(f"{world}: the train split has no labels or no image features")
    subset = load_or_make_subset(csp.run_dir, labels, ratio, seed)
    mine = subset[labels[subset] == cls]
    tensors, _ = load_checkpoint_dir(Path(pre.run_dir) / ENCODER_DIR)
    bias = tensors.get("projection.bias")
    zero_shot = zero_shot_scorer(encoder, tensors["projection.weight"].double().numpy(),
                                 bias.double().numpy() if bias is not None else None, np.asarray(features[mine]))
    panels = {f"{BASELINE}, fine-tuned": prior_scorer(load_prior(sup.run_dir), cls),
              f"{MAIN} zero-shot": zero_shot,
              f"{MAIN}, fine-tuned": prior_scorer(load_prior(csp.run_dir), cls)}
    return range_figure(world, cls, ds.classes[cls], ratio, train.lonlat[labels == cls], train.lonlat[mine],
                        panels, out)
