"""Run directories: config check on rerun, atomic checkpoints, optimizer state round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geocsp.errors import CheckpointError, ConfigError
from geocsp.training.rundir import (
    Checkpoint,
    RunDir,
    flatten_optimizer_state,
    unflatten_optimizer_state,
)


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
