"""Running jobs: finished-run detection, reuse, ordering, progress lines and worker counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from geocsp.experiments.execute import (
    default_jobs,
    execute,
    finished_metrics,
    run_job,
    schedule_order,
)
from geocsp.experiments.plan import Job


def _finished_job(tmp_path: Path, name: str, kind: str = "finetune", ratio: float | None = 0.1,
                  deps: tuple[str, ...] = (), top1: float | None = 0.5) -> Job:
    """A job whose run directory already holds its config and metrics (no training needed)."""
    run = tmp_path / name
    run.mkdir()
    cfg = {"seed": 0, "lr": 0.01, "device": "cpu", "quiet": True}
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "device": "cuda"}))  # runtime keys may differ
    metrics = {"fused": {"top1": top1}} if top1 is not None else {"loss": 1.0}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return Job(kind, "m", 0, ratio, cfg, str(run), deps[0] if deps else None, deps)


def test_finished_metrics_needs_metrics_and_the_same_config(tmp_path: Path) -> None:
    job = _finished_job(tmp_path, "a")
    assert finished_metrics(job) == {"fused": {"top1": 0.5}}
    other = Job(job.kind, job.method, job.seed, job.ratio, {**job.config, "lr": 0.02}, job.run_dir)
    assert finished_metrics(other) is None  # another config: not this run
    (Path(job.run_dir) / "metrics.json").unlink()
    assert finished_metrics(job) is None  # interrupted: no metrics yet
    missing = Job("pretrain", "m", 0, None, {}, str(tmp_path / "nothing"))
    assert finished_metrics(missing) is None


def test_run_job_reuses_a_finished_run(tmp_path: Path) -> None:
    job = _finished_job(tmp_path, "a")
    assert run_job(job, str(tmp_path / "no-data")) == {"fused": {"top1": 0.5}}


def test_execute_in_process_keeps_order_and_reports(tmp_path: Path) -> None:
    pre = _finished_job(tmp_path, "pre", kind="pretrain", ratio=None, top1=None)
    ft = [_finished_job(tmp_path, f"ft{i}", deps=(pre.run_dir,), top1=0.25 * i) for i in range(3)]
    lines: list[str] = []
    results = execute([pre, *ft], str(tmp_path), progress=lines.append)
    assert list(results) == [pre.run_dir, *(j.run_dir for j in ft)]
    assert results[ft[2].run_dir] == {"fused": {"top1": 0.5}}
    assert len(lines) == 4 and lines[0].startswith("[1/4 ") and lines[-1].startswith("[4/4 ")
    assert lines[0].endswith("pretrain m seed 0: pre-trained")
    assert lines[1].endswith("finetune m λ=0.1 seed 0: fused top-1 0.0000")
    assert execute([], str(tmp_path)) == {}


@pytest.mark.slow
def test_execute_in_a_pool_waits_for_dependencies(tmp_path: Path) -> None:
    pre = _finished_job(tmp_path, "pre", kind="pretrain", ratio=None, top1=None)
    ft = [_finished_job(tmp_path, f"ft{i}", deps=(pre.run_dir,), top1=0.25 * i) for i in range(3)]
    lines: list[str] = []
    results = execute([pre, *ft], str(tmp_path), jobs_n=2, threads=1, progress=lines.append)
    assert next(iter(results)) == pre.run_dir  # its dependents were submitted only after it
    assert results == execute([pre, *ft], str(tmp_path))
    assert len(lines) == 4


def test_schedule_order_starts_what_others_wait_for_then_the_longest() -> None:
    def job(name: str, ratio: float | None, epochs: int, deps: tuple[str, ...] = ()) -> Job:
        kind = "pretrain" if ratio is None else "finetune"
        return Job(kind, "m", 0, ratio, {"data": {"epochs": epochs}}, name, deps[0] if deps else None, deps)

    short, kde, long_ = job("short", 0.05, 60), job("kde", 1.0, 0), job("long", 1.0, 60)
    pre_small, pre_big = job("pre1", None, 12), job("pre2", None, 12)
    after = [job(f"ft{i}", r, 60, ("pre2",)) for i, r in enumerate((0.1, 1.0))]
    after.append(job("ft-pre1", 0.1, 60, ("pre1",)))
    order = [j.run_dir for j in schedule_order([short, kde, long_, pre_small, *after, pre_big])]
    # pre2 has two dependents, pre1 one; then 60 x 1.0, 60 x 0.1 (plan order kept), 60 x 0.05, the KDE (1 x 1.0)
    assert order == ["pre2", "pre1", "long", "ft1", "ft0", "ft-pre1", "short", "kde"]
    assert schedule_order([]) == []


def test_a_dependency_outside_the_jobs_is_refused_not_waited_for(tmp_path: Path) -> None:
    ft = _finished_job(tmp_path, "ft", deps=(str(tmp_path / "never-planned"),))
    for n in (1, 2):
        with pytest.raises(ValueError, match=r"not among the jobs, e\.g\. .*never-planned"):
            execute([ft], str(tmp_path), jobs_n=n)


def test_default_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_jobs("cuda") == (1, 0) and default_jobs("cuda:1") == (1, 0)
    monkeypatch.setattr("geocsp.experiments.execute.available_cores", lambda: 2)
    assert default_jobs("cpu") == (2, 1)
    monkeypatch.setattr("geocsp.experiments.execute.available_cores", lambda: 32)
    assert default_jobs("cpu") == (8, 4)
    monkeypatch.setattr("geocsp.experiments.execute.available_cores", lambda: 1)
    assert default_jobs("auto") == (1, 1)


def test_a_worker_loads_its_dataset_once_until_one_of_its_files_changes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import numpy as np
    import pandas as pd

    import geocsp.experiments.execute as ex
    from geocsp.data.format import MANIFEST
    from geocsp.data.writer import SplitData, write_dataset

    table = pd.DataFrame({"lon": [0.0, 10.0], "lat": [0.0, 5.0], "label": ["a", "b"]})
    root = write_dataset(tmp_path / "d", {"train": SplitData(table)}, ["a", "b"])
    loads: list[str] = []
    real = ex.load_dataset
    monkeypatch.setattr(ex, "load_dataset", lambda p: loads.append(str(p)) or real(p))
    first = ex.cached_dataset(str(root))
    assert ex.cached_dataset(Path(root) / ".." / "d") is first and len(loads) == 1  # same directory, one load
    st = os.stat(Path(root) / MANIFEST)
    os.utime(Path(root) / MANIFEST, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a rewritten dataset
    again = ex.cached_dataset(str(root))
    assert again is not first and len(loads) == 2
    assert np.array_equal(again.split("train").lonlat, first.split("train").lonlat)
    # a table rewritten by hand, the manifest untouched: loaded afresh (its labels, not stale ones)
    table_file = next(f for f in os.listdir(root) if f.startswith("train.") and f != MANIFEST)
    real_table = pd.read_parquet(Path(root) / table_file)
    real_table["label"] = ["b", "a"]
    real_table.to_parquet(Path(root) / table_file, index=False)
    edited = ex.cached_dataset(str(root))
    assert edited is not again and len(loads) == 3
    assert edited.split("train").labels.tolist() == [1, 0]
    assert ex.cached_dataset(str(root)) is edited and len(loads) == 3
