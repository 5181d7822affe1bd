"""Kill points: a run killed at any write point resumes to exactly the uninterrupted result.

Each case runs ``python -m geocsp finetune|pretrain`` in a child process with
``$GEOCSP_FAULT=<point>:<n>`` (the child SIGKILLs itself the n-th time it reaches the named
write point of :func:`geocsp.io.fault_point`), reruns the same command without the fault and
compares with an uninterrupted run: byte-identical ``metrics.json``, identical saved tensors,
one log line per epoch, no temporaries left. The full sweep is ``-m slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geocsp.cli.main import main
from geocsp.faults import FAULT_ENV
from geocsp.io import is_temporary, load_tensors
from geocsp.training import rundir
from geocsp.training.loop import result_fields

EPOCHS = 3
STAGES = {"finetune": ("prior", ["--ratio", "0.1"]), "pretrain": ("encoder", [])}


def _argv(stage: str, world: Path, out: Path, tiny: list[str]) -> list[str]:
    sets = [a for kv in [*tiny, "checkpoint_every=2"] for a in ("--set", kv)]
    return [stage, "--data", str(world), "--out", str(out), "--epochs", str(EPOCHS), *STAGES[stage][1], *sets]


def _child(argv: list[str], fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["OMP_NUM_THREADS"] = "1"  # the same single-threaded kernels as the in-process runs
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "geocsp", *argv], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def _rerun(argv: list[str]) -> None:
    torch.set_num_threads(1)
    assert main(argv) == 0
    assert not rundir._HELD  # the run lock is released when the run returns


@pytest.fixture(scope="module")
def reference(world: Path, tiny: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uninterrupted runs, one per stage (in this process: reruns are compared with them)."""
    root = tmp_path_factory.mktemp("faults-ref")
    runs = {}
    for stage in STAGES:
        runs[stage] = root / stage
        _rerun(_argv(stage, world, runs[stage], tiny))
    return runs


def assert_same_result(run: Path, ref: Path, artifact: str) -> None:
    """Byte-identical metrics.json, identical tensors, one log line per epoch, no temporaries."""
    assert (run / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()
    got, want = load_tensors(run / artifact / "model.safetensors"), load_tensors(ref / artifact / "model.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert (run / artifact / "config.json").read_text() == (ref / artifact / "config.json").read_text()

    def log(p: Path) -> list[dict]:
        return [result_fields(json.loads(x)) for x in (p / "log.jsonl").read_text().splitlines()]

    assert [r["epoch"] for r in log(run)] == list(range(1, EPOCHS + 1))
    assert log(run) == log(ref)
    assert not [p for p in run.rglob("*") if is_temporary(p.name)]


def _kill_and_resume(stage: str, fault: str, world: Path, tiny: list[str], reference: dict[str, Path],
                     tmp_path: Path, expect_rc: int = -signal.SIGKILL) -> None:
    argv = _argv(stage, world, tmp_path / "run", tiny)
    killed = _child(argv, fault)
    assert killed.returncode == expect_rc, (fault, killed.returncode, killed.stderr[-2000:])
    _rerun(argv)
    assert_same_result(tmp_path / "run", reference[stage], STAGES[stage][0])


FAST = ["subset.after:1", "log.after:2", "checkpoint.after:1", "artifact.before:1"]
"""Representative kill points: a torn subset pair, epochs logged after the last checkpoint,
a checkpoint directory without its ``latest`` pointer, no output artifact yet."""
SLOW = ["subset.before:1", "subset.after:2", "log.before:1", "log.after:3", "checkpoint.before:1",
        "checkpoint.before:2", "latest.before:1", "latest.after:1", "latest.after:2", "artifact.after:1",
        "metrics.before:1", "metrics.after:1"]


@pytest.mark.parametrize("fault", [*FAST, *(pytest.param(f, marks=pytest.mark.slow) for f in SLOW)])
def test_finetune_killed_at_a_write_point_resumes_identically(fault: str, world: Path, tiny: list[str],
                                                              reference: dict[str, Path], tmp_path: Path) -> None:
    _kill_and_resume("finetune", fault, world, tiny, reference, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["log.after:1", "checkpoint.after:1", "latest.after:2", "artifact.before:1",
                                   "artifact.after:1", "metrics.before:1"])
def test_pretrain_killed_at_a_write_point_resumes_identically(fault: str, world: Path, tiny: list[str],
                                                              reference: dict[str, Path], tmp_path: Path) -> None:
    _kill_and_resume("pretrain", fault, world, tiny, reference, tmp_path)


@pytest.mark.parametrize(("fault", "rc"), [
    ("checkpoint.before:1:INT", 130),  # Ctrl-C while a checkpoint directory is written: "interrupted"
    pytest.param("log.after:1:TERM", -signal.SIGTERM, marks=pytest.mark.slow),
])
def test_interrupted_run_stops_and_resumes_identically(fault: str, rc: int, world: Path, tiny: list[str],
                                                       reference: dict[str, Path], tmp_path: Path) -> None:
    _kill_and_resume("finetune", fault, world, tiny, reference, tmp_path, expect_rc=rc)


def _mount_tmpfs(path: Path, size: str) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, check=False).returncode == 0


def test_full_disk_is_one_line_and_leaves_no_partial_artifact(world: Path, tiny: list[str],
                                                              reference: dict[str, Path], tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "96k"):  # config, subset and log fit; the checkpoints do not
        pytest.skip("needs root on Linux with mount -t tmpfs")
    try:
        argv = _argv("finetune", world, disk / "run", tiny)
        res = _child(argv)
        run = tmp_path / "copy"
        shutil.copytree(disk / "run", run)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left" in lines[0], res.stderr[-2000:]
    assert not [p for p in run.rglob("*") if is_temporary(p.name)]
    for d in (run / "checkpoints").glob("epoch-*"):  # every visible checkpoint is complete
        assert sorted(p.name for p in d.iterdir()) == ["model.safetensors", "optim.safetensors", "state.json"]
    for d in (run / "prior", run / "encoder"):
        assert not d.exists() or sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]
    subset = sorted(p.suffix for p in (run / "subset").glob("*")) if (run / "subset").exists() else []
    assert subset in ([], [".json", ".npy"])
    _rerun([*argv[:4], str(run), *argv[5:]])  # with room again, the same command finishes the run
    assert_same_result(run, reference["finetune"], "prior")
