"""The epoch loop's optimizer: fused Adam on CUDA, and resuming across implementations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geocsp.training.config import OptimConfig
from geocsp.training.loop import LoopSpec, make_optimizer, resume, save
from geocsp.training.rundir import RunDir


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _steps(net: torch.nn.Module, opt: torch.optim.Optimizer, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        opt.zero_grad()
        net(torch.randn(5, 3, generator=g)).pow(2).sum().backward()
        opt.step()


def _spec(run: RunDir, net: torch.nn.Module, opt: torch.optim.Optimizer) -> LoopSpec:
    return LoopSpec(stage="pretrain", run=run, module=net, optimizer=opt, epochs=2, seed=0,
                    lr_at=lambda e: 0.01, epoch_indices=lambda e: None, step=lambda i, g: None,
                    batch_size=1, device=torch.device("cpu"))


def test_make_optimizer_fuses_on_cuda_only() -> None:
    cfg = OptimConfig(lr=0.01, weight_decay=0.1)
    cpu = make_optimizer(list(_net().parameters()), cfg, torch.device("cpu"))
    assert cpu.defaults["fused"] is None and cpu.defaults["foreach"] is True and cpu.defaults["lr"] == 0.01
    assert cpu.defaults["weight_decay"] == 0.1
    # the choice follows the device argument (CPU tensors accept the fused kernel too)
    cuda = make_optimizer(list(_net().parameters()), cfg, torch.device("cuda"))
    assert cuda.defaults["fused"] is True and cuda.defaults["foreach"] is None


def test_the_cpu_adam_equals_the_per_tensor_adam_bit_for_bit() -> None:
    """The CPU choice (``foreach``) only groups the per-tensor operations: every earlier CPU
    run (torch's per-tensor default) is reproduced exactly."""
    nets = [_net(), _net()]
    nets[1].load_state_dict(nets[0].state_dict())
    cfg = OptimConfig(lr=0.01, weight_decay=0.1)
    opts = [make_optimizer(list(nets[0].parameters()), cfg, torch.device("cpu")),
            torch.optim.Adam(nets[1].parameters(), lr=0.01, weight_decay=0.1, foreach=False)]
    for net, opt in zip(nets, opts, strict=True):
        _steps(net, opt, 5, seed=4)
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(("saved_fused", "resumed_fused"), [(None, True), (True, None)])
def test_resume_keeps_this_process_adam_kernel(tmp_path: Path, saved_fused: bool | None,
                                                resumed_fused: bool | None) -> None:
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01, fused=saved_fused)
    _steps(net, opt, 3, seed=1)
    run = RunDir(tmp_path / "run", rank=0)
    run.prepare({"a": 1})
    save(_spec(run, net, opt), 1)

    net2 = _net()
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.01, fused=resumed_fused)
    assert resume(_spec(run, net2, opt2)) == 1
    assert all(g["fused"] is resumed_fused for g in opt2.param_groups)
    _steps(net, opt, 2, seed=2)
    _steps(net2, opt2, 2, seed=2)  # the other kernel, same update rule
    for p, q in zip(net.parameters(), net2.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_resume_cuts_the_log_back_to_the_checkpoint_or_to_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run", rank=0)
    run.prepare({"a": 1})
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for e in (1, 2):  # epochs logged by a run killed before its first checkpoint
        run.log({"stage": "pretrain", "epoch": e})
    assert resume(_spec(run, net, opt)) == 0
    assert (run.path / "log.jsonl").read_text() == ""
    for e in (1, 2, 3):
        run.log({"stage": "pretrain", "epoch": e})
    save(_spec(run, net, opt), 2)  # checkpoint_every > 1: epoch 3 was logged, not saved
    assert resume(_spec(run, _net(), torch.optim.Adam(_net().parameters()))) == 2
    epochs = [line for line in (run.path / "log.jsonl").read_text().splitlines()]
    assert [int(x.split('"epoch": ')[1].rstrip("}")) for x in epochs] == [1, 2]
    run.close()
