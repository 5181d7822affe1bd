"""Run directories: config check on rerun, atomic checkpoints, optimizer state round trip."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

import geocsp.training.rundir as rundir_mod
from geocsp.errors import CheckpointError, ConfigError
from geocsp.training.optim_state import flatten_optimizer_state, unflatten_optimizer_state
from geocsp.training.rundir import Checkpoint, RunDir


def _adam_after_steps() -> tuple[torch.nn.Module, torch.optim.Adam]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    return net, opt


def test_optimizer_state_round_trip_through_files(tmp_path: Path) -> None:
    net, opt = _adam_after_steps()
    tensors, data = flatten_optimizer_state(opt.state_dict())
    run = RunDir(tmp_path / "run", rank=0)
    run.prepare({"a": 1})
    run.save_checkpoint(Checkpoint(3, net.state_dict(), tensors, {"optim": data}))
    ckpt = run.latest_checkpoint()
    assert ckpt is not None and ckpt.epoch == 3
    net2, _ = _adam_after_steps()
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.5)
    opt2.load_state_dict(unflatten_optimizer_state(ckpt.optim, json.loads(json.dumps(ckpt.state["optim"]))))
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, st in a["state"].items():
        for key, value in st.items():
            assert torch.equal(value, b["state"][pid][key]), (pid, key)
    # one more identical step gives identical parameters
    x = torch.randn(5, 3)
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
    net2.load_state_dict(net2.state_dict())
    for p, q in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_prepare_refuses_a_different_config(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run", rank=0)
    assert run.prepare({"seed": 0, "data": {"epochs": 2}, "quiet": False}) is False
    # runtime keys may change; the same config resumes
    assert run.prepare({"seed": 0, "data": {"epochs": 2}, "quiet": True, "device": "cpu"}) is True
    with pytest.raises(ConfigError, match=r"different config \(data.epochs: saved 2, now 3\).*--overwrite"):
        run.prepare({"seed": 0, "data": {"epochs": 3}})
    (run.path / "metrics.json").write_text("{}")
    assert run.prepare({"seed": 1}, overwrite=True) is False
    assert not (run.path / "metrics.json").exists()


def test_a_new_run_that_fails_before_its_first_epoch_is_undone(tmp_path: Path) -> None:
    """A refusal after prepare (e.g. a sampler with no area) left config.yaml; a rerun with
    the corrected config was then refused as 'a different config'."""
    for made in (True, False):
        path = tmp_path / f"made{made}"
        if not made:
            path.mkdir()
        with pytest.raises(RuntimeError), RunDir(path, rank=0) as run:
            run.prepare({"seed": 0})
            (run.path / "subset").mkdir()
            raise RuntimeError("refused after prepare")
        assert not path.exists() if made else list(path.iterdir()) == []
        with RunDir(path, rank=0) as run:
            assert run.prepare({"seed": 1}) is False  # another config: a new run, not refused


@pytest.mark.parametrize("progress", ["log", "checkpoint", "resumed"])
def test_a_failed_run_keeps_what_a_rerun_resumes(tmp_path: Path, progress: str) -> None:
    path = tmp_path / "run"
    if progress == "resumed":
        RunDir(path, rank=0).prepare({"seed": 0})
    with pytest.raises(KeyboardInterrupt), RunDir(path, rank=0) as run:
        run.prepare({"seed": 0})
        if progress == "log":
            run.log({"epoch": 1, "loss": 1.0})
        elif progress == "checkpoint":
            (run.path / "checkpoints").mkdir()
        raise KeyboardInterrupt
    assert (path / "config.yaml").is_file()


def test_prepare_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a geocsp run"):
        RunDir(tmp_path, rank=0).prepare({"seed": 0})


def test_latest_pointer_written_last_and_pruning(tmp_path: Path) -> None:
    run = RunDir(tmp_path, rank=0)
    assert run.latest_checkpoint() is None
    w = {"w": torch.arange(3.0)}
    for epoch in (1, 2, 3):
        run.save_checkpoint(Checkpoint(epoch, w, {}, {"optim": {"param_groups": []}}), keep=2)
    names = sorted(p.name for p in run.checkpoint_root.glob("epoch-*"))
    assert names == ["epoch-0002", "epoch-0003"]
    assert (run.checkpoint_root / "latest").read_text().strip() == "epoch-0003"
    # a half-written checkpoint (no pointer update) is never picked up
    (run.checkpoint_root / "epoch-0004").mkdir()
    assert run.latest_checkpoint().epoch == 3
    (run.checkpoint_root / "latest").write_text("epoch-0004\n")
    with pytest.raises(CheckpointError, match="epoch-0004: checkpoint is missing or corrupt"):
        run.latest_checkpoint()


def test_only_rank_zero_writes(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r1", rank=1)
    run.prepare({"seed": 0})
    run.log({"epoch": 1})
    run.write_metrics({"x": 1})
    assert run.save_checkpoint(Checkpoint(1, {"w": torch.zeros(1)}, {}, {})) is None
    assert not (tmp_path / "r1").exists()


def test_truncate_log_drops_lost_epochs(tmp_path: Path) -> None:
    run = RunDir(tmp_path, rank=0)
    for e in (1, 2, 3):
        run.log({"epoch": e, "loss": float(e)})
    run.truncate_log(2)
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]


def test_truncate_log_drops_a_line_cut_short(tmp_path: Path) -> None:
    run = RunDir(tmp_path, rank=0)
    run.log({"epoch": 1})
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"epoch": 2, "lo')  # a kill or a full disk mid-line
    run.truncate_log(5)
    assert (tmp_path / "log.jsonl").read_text() == '{"epoch": 1}\n'


def test_failed_checkpoint_leaves_no_partial_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunDir(tmp_path, rank=0)
    w = {"w": torch.arange(3.0)}
    run.save_checkpoint(Checkpoint(1, w, {}, {"optim": {"param_groups": []}}))
    real = rundir_mod.write_tensors
    calls: list[Path] = []

    def full_disk(path: Path, tensors: dict, metadata: dict | None = None) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, tensors, metadata)

    monkeypatch.setattr(rundir_mod, "write_tensors", full_disk)
    with pytest.raises(OSError, match="No space"):
        run.save_checkpoint(Checkpoint(2, w, {}, {"optim": {"param_groups": []}}))
    assert sorted(p.name for p in run.checkpoint_root.iterdir()) == ["epoch-0001", "latest"]
    assert run.latest_checkpoint().epoch == 1


def test_prepare_removes_stray_temporaries_of_this_run_only(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run", rank=0)
    run.prepare({"seed": 0})
    ck = run.checkpoint_root
    ck.mkdir()
    (ck / ".epoch-0002.0123456789ab.tmp").mkdir()  # a checkpoint a killed run was writing
    (ck / ".latest.k3j_x9q2.tmp").write_text("epoch-0002")
    (run.path / "prior").mkdir()
    (run.path / ".prior.0123456789ab.old").mkdir()  # moved aside, superseded
    (run.path / ".encoder.0123456789ab.old").mkdir()  # moved aside, replacement never came
    (run.path / ".encoder.0123456789ab.old" / "config.json").write_text("{}")
    beside = tmp_path / ".run.0123456789ab.tmp"  # outside the run directory: not ours to touch
    beside.write_text("x")
    run.close()
    assert run.prepare({"seed": 0}) is True
    assert sorted(p.name for p in ck.iterdir()) == []
    assert sorted(p.name for p in run.path.iterdir()) == [".lock", "checkpoints", "config.yaml", "encoder",
                                                          "prior"]
    assert (run.path / "encoder" / "config.json").is_file() and beside.is_file()
    run.close()


def test_a_directory_left_with_only_temporaries_is_a_new_run(tmp_path: Path) -> None:
    (tmp_path / ".config.yaml.k3j_x9q2.tmp").write_text("half")
    (tmp_path / ".lock").write_text("123\n")
    with RunDir(tmp_path, rank=0) as run:
        assert run.prepare({"seed": 0}) is False
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "config.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # the lock goes with the run


def _hold_lock_in_child(path: Path) -> tuple[int, int]:
    """Fork a process that prepares ``path`` and keeps it; returns (pid, read end of its pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            run = RunDir(path, rank=0)  # held while the object lives
            run.prepare({"seed": 0})
            os.write(w, b"ok")
        finally:
            time.sleep(60)
            os._exit(0)
    assert os.read(r, 2) == b"ok"
    return pid, r


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and fcntl")
def test_a_second_process_is_refused_until_the_first_ends(tmp_path: Path) -> None:
    run_path = tmp_path / "run"
    pid, r = _hold_lock_in_child(run_path)
    try:
        with pytest.raises(ConfigError, match=rf"run: run directory is in use by process {pid}; "
                                              r"wait for it or use another --out"):
            RunDir(run_path, rank=0).prepare({"seed": 0})
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
    with RunDir(run_path, rank=0) as run:  # the lock died with its holder
        assert run.prepare({"seed": 0}) is True
        assert (run_path / ".lock").read_text().strip() == str(os.getpid())


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and fcntl")
def test_lock_is_reentrant_in_a_process_and_released_by_close(tmp_path: Path) -> None:
    a, b = RunDir(tmp_path, rank=0), RunDir(tmp_path, rank=0)
    a.prepare({"seed": 0})
    assert b.prepare({"seed": 0}) is True  # this process may reopen its own run
    a.close()
    b.close()
    pid, r = _hold_lock_in_child(tmp_path)  # released: another process gets it
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(r)
    del a, b
