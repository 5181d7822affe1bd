"""Running planned jobs: in this process or a process pool, reusing finished runs.

A job whose run directory already holds ``metrics.json`` and a ``config.yaml`` equal to
its config (runtime keys aside) is finished and not rerun; an interrupted run resumes (the
training functions resume from their run directory). With several workers a fine-tuning
job is submitted once the pre-training run it depends on has finished, one job per free
worker in :func:`schedule_order` (pre-training first, then the longest runs); results do
not depend on the scheduling.

SIGINT and SIGTERM (:func:`interruptible`): the parent kills its worker processes (which
ignore SIGINT, so Ctrl-C reaches the parent only, and die with the parent on Linux) and
raises :class:`Interrupted`, which the CLI prints as one line, exiting 130 (SIGINT) or 143
(SIGTERM). Finished runs stay; unfinished ones resume from their last checkpoint on rerun.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing as mp
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import FrameType
from typing import Any

from geocsp.config import from_dict, load_yaml
from geocsp.data import GeoDataset, load_dataset
from geocsp.data.dataset import read_manifest
from geocsp.data.format import MANIFEST
from geocsp.errors import GeocspError
from geocsp.experiments.plan import Job
from geocsp.experiments.provenance import available_cores
from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain
from geocsp.training.compat import config_dict_for_compare


class Interrupted(BaseException):
    """SIGINT or SIGTERM ended the runs; rerunning the same command resumes them.

    A ``BaseException`` (like ``KeyboardInterrupt``), not a :class:`GeocspError`: the signal
    handler raises it wherever the main thread is, and code that turns ``Exception`` into a
    one-line input error (a reader of a corrupt file) must not swallow it.

    Args:
        signum: the signal received.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM (shell convention)
        name = signal.Signals(signum).name
        super().__init__(f"interrupted ({name}); rerun the same command to resume")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interruptible() -> Iterator[list[int]]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` inside the block.

    The previous handlers come back on exit. Outside the main thread (where handlers cannot
    be installed) nothing changes.

    Yields:
        A list that receives the numbers of the signals caught (for code that must tell an
        interruption from another failure, e.g. a worker killed by the same signal).
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _worker_init() -> None:
    """Pool worker start-up: ignore SIGINT (Ctrl-C goes to the parent) and die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))


def finished_metrics(job: Job) -> dict[str, Any] | None:
    """The metrics of a run that already finished with this job's config.

    Args:
        job: the job.

    Returns:
        The run's ``metrics.json`` as a dict, or None when the run is missing, unfinished or
        was made with another config.
    """
    run = Path(job.run_dir)
    metrics, cfg = run / "metrics.json", run / "config.yaml"
    if not (metrics.is_file() and cfg.is_file()):
        return None
    if config_dict_for_compare(load_yaml(cfg)) != config_dict_for_compare(job.config):
        return None
    result: dict[str, Any] = json.loads(metrics.read_text())
    return result


_LOADED: dict[str, tuple[tuple[Any, ...], GeoDataset]] = {}
"""This process's loaded dataset, by directory, with the file stamps it was loaded from: one entry."""


def _stamps(root: Path) -> tuple[Any, ...]:
    """(name, size, mtime, inode) of the manifest and of every file it names, in manifest order.

    A file that cannot be stat'ed (gone) gives ``None``; an unreadable manifest names no files:
    the next load reports either in one line.
    """
    names = [MANIFEST]
    with contextlib.suppress(GeocspError):
        for entry in read_manifest(root)["splits"].values():
            names += [f for f in (entry["table"], entry.get("features"), *(entry.get("probs") or {}).values()) if f]
    out: list[Any] = []
    for name in names:
        try:
            st = (root / name).stat()
            out.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((name, None))
    return tuple(out)


def cached_dataset(data: str | Path) -> GeoDataset:
    """The dataset at ``data``, loaded once per process while none of its files changed.

    A protocol's worker runs dozens of trainings on one dataset; each used to read and check
    the manifest and map every array again (~0.19 s on GeoWorld default). The key is the size,
    modification time and inode of the manifest and of every table and array it names, so a
    file rewritten or replaced by hand (not only through a new manifest) is loaded afresh;
    the new dataset replaces the kept one.

    Args:
        data: the dataset directory.

    Returns:
        The loaded :class:`~geocsp.data.GeoDataset` (shared: runs only read it).
    """
    root = Path(data).resolve()
    stamps = _stamps(root)
    kept = _LOADED.get(str(root))
    if kept is None or kept[0] != stamps:
        _LOADED.clear()
        _LOADED[str(root)] = (stamps, load_dataset(root))
    return _LOADED[str(root)][1]


def run_job(job: Job, data: str, threads: int = 0) -> dict[str, Any]:
    """Run (or reuse) one job. Top-level so worker processes can run it.

    Args:
        job: the job.
        data: the dataset directory.
        threads: torch threads for this process (0 = leave torch's default).

    Returns:
        The run's metrics dict.
    """
    done = finished_metrics(job)
    if done is not None:
        return done
    import torch

    if threads > 0:
        torch.set_num_threads(threads)  # the pool's per-worker share of the cores
    ds = cached_dataset(data)
    if job.kind == "pretrain":
        return pretrain(from_dict(PretrainConfig, job.config), ds, job.run_dir)
    return finetune(from_dict(FinetuneConfig, job.config), ds, job.run_dir)


def default_jobs(device: str) -> tuple[int, int]:
    """(worker processes, threads each): one process per core up to 8 on CPU, 1 on a GPU.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` ...

    Returns:
        ``(processes, threads per process)``; threads 0 leaves torch's default.
    """
    if device.startswith("cuda"):
        return 1, 0
    cores = available_cores()
    n = max(1, min(cores, 8))
    return n, max(1, cores // n)


def _describe(job: Job, res: dict[str, Any]) -> str:
    top1 = res.get("fused", {}).get("top1")
    what = f"fused top-1 {top1:.4f}" if top1 is not None else "pre-trained"
    ratio = "" if job.ratio is None else f" λ={job.ratio:g}"
    return f"{job.kind:8s} {job.method}{ratio} seed {job.seed}: {what}"


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes, reap them and shut the pool down.

    The pool's manager thread is joined too: left running, it could close its wake-up pipe
    while the interpreter's exit hook writes to it (a rare "Bad file descriptor" traceback
    after the one-line "interrupted" message).
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    for p in procs:
        with contextlib.suppress(Exception):
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=5)
    if manager is not None:
        manager.join(timeout=5)


def schedule_order(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` in the order a pool should start them when several are ready.

    Jobs that others wait for first (most dependents first), then the longest first by a
    work estimate (epochs × label ratio; a run without epochs, e.g. a class KDE, counts as
    one epoch), so that the last runs to finish are the short ones and no worker idles long
    at the end. Stable: equal keys keep the plan's order. Results do not depend on it.
    """
    dependents = {j.run_dir: 0 for j in jobs}
    for j in jobs:
        for d in j.deps:
            if d in dependents:
                dependents[d] += 1

    def work(j: Job) -> float:
        epochs = (j.config.get("data") or {}).get("epochs") or 0
        return max(float(epochs), 1.0) * (1.0 if j.ratio is None else float(j.ratio))

    return sorted(jobs, key=lambda j: (-dependents[j.run_dir], -work(j)))


def _run_pool(jobs: Sequence[Job], data: str, jobs_n: int, threads: int,
              note: Callable[[Job, dict[str, Any]], None], results: dict[str, dict[str, Any]]) -> None:
    pending = schedule_order(jobs)
    pool = ProcessPoolExecutor(jobs_n, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    with interruptible() as caught:
        try:
            running: dict[Future[dict[str, Any]], Job] = {}
            while pending or running:
                ready = [j for j in pending if all(d in results for d in j.deps)]
                for j in ready[: max(0, jobs_n - len(running))]:  # one per free worker: the order holds
                    pending.remove(j)
                    running[pool.submit(run_job, j, data, threads)] = j
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    note(running.pop(fut), fut.result())
        except BrokenProcessPool:
            _kill_pool(pool)
            if caught:  # a worker died of the same signal before the parent's handler ran
                raise Interrupted(caught[0]) from None
            raise
        except BaseException:
            _kill_pool(pool)
            raise
    pool.shutdown(wait=True)


def execute(jobs: Sequence[Job], data: str, jobs_n: int = 1, threads: int = 0,
            progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` respecting dependencies.

    With ``jobs_n > 1`` the runs go to a spawn-started process pool; a fine-tuning run is
    submitted once its pre-training run has finished.

    Args:
        jobs: planned jobs, every dependency before its dependents.
        data: the dataset directory.
        jobs_n: worker processes (1 = in this process, in order).
        threads: torch threads per worker (0 = leave torch's default).
        progress: called with one line per finished run.

    Returns:
        Metrics dicts by run directory.

    Raises:
        Interrupted: on SIGINT or SIGTERM (the workers are killed first).
        ValueError: a job depends on a run that is not among ``jobs`` (it would wait forever).
    """
    planned = {j.run_dir for j in jobs}
    orphans = sorted({d for j in jobs for d in j.deps} - planned)
    if orphans:
        raise ValueError(f"{len(orphans)} dependency run(s) not among the jobs, e.g. {orphans[0]}")
    say = progress or (lambda _msg: None)
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()

    def note(job: Job, res: dict[str, Any]) -> None:
        results[job.run_dir] = res
        say(f"[{len(results)}/{len(jobs)} {time.perf_counter() - t0:6.1f}s] {_describe(job, res)}")

    if jobs_n <= 1:
        with interruptible():
            for job in jobs:
                note(job, run_job(job, data, threads))
    else:
        _run_pool(jobs, data, jobs_n, threads, note, results)
    return results
