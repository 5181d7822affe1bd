"""SIGINT / SIGTERM: one line, exit 130 / 143, no worker left behind, and the rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geocsp.experiments.execute import Interrupted, interruptible

DEMO = [sys.executable, "-m", "geocsp", "demo", "--quick", "--no-figures"]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _live_group_members(pgid: int) -> list[str]:
    """Processes of group ``pgid`` that are not zombies (this machine's init may not reap)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(text[:80])
    return alive


def _start_and_signal(out: Path, sig: int, workers: int = 2) -> subprocess.CompletedProcess[str]:
    """Start the quick demo in its own session, wait for its workers, send ``sig``."""
    proc = subprocess.Popen([*DEMO, "--jobs", str(workers), "--out", str(out)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < workers and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None and len(_children(proc.pid)) >= workers, "the demo started no workers"
    time.sleep(2.0)  # let the workers get into training
    os.kill(proc.pid, sig)
    try:
        stdout, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure being tested for
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    deadline = time.monotonic() + 5
    while _live_group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _live_group_members(proc.pid) == [], "processes of the demo's group survived"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_interruptible_turns_signals_into_one_error_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as err, interruptible() as caught:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler raises before this ends
    assert caught == [signal.SIGTERM] and not isinstance(err.value, Exception)  # no `except Exception` swallows it
    assert err.value.exit_code == 143 and str(err.value) == (
        "interrupted (SIGTERM); rerun the same command to resume")
    assert Interrupted(signal.SIGINT).exit_code == 130
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"),
                                                  (signal.SIGINT, 130, "SIGINT")])
def test_signal_ends_demo_and_its_workers_with_one_line(tmp_path: Path, sig: int, code: int,
                                                        name: str) -> None:
    res = _start_and_signal(tmp_path / "out", sig)
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1] == f"geocsp: interrupted ({name}); rerun the same command to resume"
    assert sum("interrupted" in line for line in lines) == 1


def test_signal_in_process_run_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.Popen([*DEMO, "--jobs", "1", "--out", str(tmp_path / "out")], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # world generation or the first run
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "geocsp: interrupted (SIGTERM); rerun the same command to resume"


@pytest.mark.slow
def test_interrupted_demo_resumes_to_the_uninterrupted_results(tmp_path: Path) -> None:
    ref = subprocess.run([*DEMO, "--out", str(tmp_path / "ref")], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    res = _start_and_signal(out, signal.SIGTERM)
    assert res.returncode == 143, res.stderr
    assert not (out / "results.json").exists()
    again = subprocess.run([*DEMO, "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows == json.loads((tmp_path / "ref" / "results.json").read_text())["rows"]
