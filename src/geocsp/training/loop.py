"""The epoch loop shared by pre-training and fine-tuning, plus device/precision helpers.

:func:`train_epochs` holds no global state: everything it needs comes in a
:class:`LoopSpec`. At the start of every epoch it seeds torch and NumPy from
``(seed, epoch, rank)`` and makes a fresh ``torch.Generator`` for random locations, so a
run resumed at an epoch boundary replays exactly what an uninterrupted run does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from geocsp.distributed import sum_over_ranks
from geocsp.runtime import autocast
from geocsp.training.config import OptimConfig
from geocsp.training.optim_state import flatten_optimizer_state, unflatten_optimizer_state
from geocsp.training.rundir import Checkpoint, RunDir

HOOK_PREFIX = "hook."
"""Prefix of an :class:`EpochHook`'s tensors in a checkpoint's model file."""
TIMING_KEYS = ("seconds", "samples_per_s")
"""Log-record keys that vary between identical runs (kept out of metrics.json)."""


def result_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The deterministic training fields of an epoch log record (epoch, lr, loss, terms)."""
    return {k: v for k, v in record.items() if k not in (*TIMING_KEYS, "stage", "val", "calib", "samples")}


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed derived from ``(seed, epoch, rank)`` (NumPy SeedSequence)."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def seed_all(seed: int) -> None:
    """Seed torch (all devices) and NumPy's legacy global RNG."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def iter_batches(indices: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Consecutive slices of ``indices`` of at most ``batch_size`` (the last may be smaller)."""
    for start in range(0, indices.shape[0], batch_size):
        yield indices[start : start + batch_size]


def progress(total: int, desc: str, disable: bool) -> Any:
    """A tqdm bar counting samples (shows samples/s); disabled when ``disable``."""
    return tqdm(total=total, desc=desc, unit="samples", unit_scale=True, disable=disable, leave=False)


def make_optimizer(params: list[nn.Parameter] | list[dict[str, Any]], optim: OptimConfig,
                   device: torch.device) -> torch.optim.Adam:
    """Adam over ``params`` with ``optim.lr`` / ``optim.weight_decay`` (an ``OptimConfig``).

    ``params`` may be parameter groups; a group's ``lr_scale`` (default 1) multiplies the
    epoch's learning rate (:func:`run_epoch`) and is saved with the optimizer state.

    On CUDA the fused implementation (one kernel for all parameters instead of a few per
    tensor) is used; on the CPU the ``foreach`` one (multi-tensor ops: the same values bit for
    bit as torch's per-tensor default, ~3 % less time per demo step); elsewhere torch's
    default. All follow the same update rule, and their state dicts are interchangeable (a
    run may resume on another device).
    """
    fused = True if device.type == "cuda" else None
    foreach = True if device.type == "cpu" else None
    return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay, fused=fused, foreach=foreach)


def maybe_compile(module: nn.Module, enabled: bool | str) -> Callable[..., Tensor]:
    """``torch.compile(module)`` when ``enabled`` (a string: that ``mode``), else the module itself."""
    if not enabled:
        return module
    return torch.compile(module, mode=enabled if isinstance(enabled, str) else None)


class EpochHook(Protocol):
    """Runs after every epoch (e.g. early stopping); its state travels with the checkpoints."""

    @property
    def done(self) -> bool:
        """True when no further epoch should run."""
        ...

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """After ``epoch`` completed epochs: may add entries to the epoch's log ``record``."""
        ...

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, JSON data)`` to checkpoint."""
        ...

    def restore(self, tensors: dict[str, Tensor], data: dict[str, Any]) -> None:
        """Load what :meth:`state` returned (from a checkpoint)."""
        ...


@dataclass
class LoopSpec:
    """Everything :func:`train_epochs` needs.

    Args:
        stage: ``pretrain`` or ``finetune`` (logged).
        run: the run directory (checkpoints and log).
        module: every checkpointed module (its ``state_dict`` is the model checkpoint).
        optimizer: optimizer over the trained parameters.
        epochs: total number of epochs.
        seed: base seed.
        lr_at: epoch -> learning rate.
        epoch_indices: epoch -> (n,) int64 row positions, in order.
        step: (batch row positions (B,) int64 CPU tensor, generator) -> LossOutput.
        batch_size: rows per step.
        device: where the generator lives.
        precision: ``fp32`` or ``bf16``.
        set_mode: epoch (0-based) -> None; puts the modules into training mode at each
            epoch start (default ``module.train()``).
        evaluate: completed epochs -> metrics dict to log, or None.
        eval_every: call ``evaluate`` every this many epochs (0 = never).
        checkpoint_every: checkpoint every this many epochs (and after the last one).
        keep_checkpoints: how many checkpoints to keep.
        quiet: no progress bars.
        rank: process rank (seeds; only rank 0 shows progress).
        hook: runs after each epoch (after ``evaluate``), checkpointed with the run; the
            loop stops once ``hook.done``.
    """

    stage: str
    run: RunDir
    module: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    seed: int
    lr_at: Callable[[int], float]
    epoch_indices: Callable[[int], np.ndarray]
    step: Callable[[Tensor, torch.Generator], Any]
    batch_size: int
    device: torch.device
    precision: str = "fp32"
    set_mode: Callable[[int], None] | None = None
    evaluate: Callable[[int], dict[str, Any]] | None = None
    eval_every: int = 0
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    quiet: bool = False
    rank: int = 0
    hook: EpochHook | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def resume(spec: LoopSpec) -> int:
    """Load the run's last complete checkpoint into the module and optimizer.

    The log is cut back to the checkpoint's epoch (to epoch 0 without one): epochs logged
    after it by a killed run are trained and logged again, never twice.

    Returns:
        Number of completed epochs (0 when starting fresh).
    """
    ckpt = spec.run.latest_checkpoint()
    if ckpt is None:
        spec.run.truncate_log(0)
        return 0
    spec.module.load_state_dict({k: v for k, v in ckpt.model.items() if not k.startswith(HOOK_PREFIX)})
    if spec.hook is not None:
        n = len(HOOK_PREFIX)
        spec.hook.restore({k[n:]: v for k, v in ckpt.model.items() if k.startswith(HOOK_PREFIX)},
                          ckpt.state.get("hook", {}))
    state = unflatten_optimizer_state(ckpt.optim, ckpt.state["optim"])
    # which kernel runs the update (fused / foreach) is this process's choice, not saved state:
    # a CPU checkpoint resumed on CUDA keeps the fused Adam, and the reverse
    impl = {k: spec.optimizer.defaults[k] for k in ("fused", "foreach") if k in spec.optimizer.defaults}
    for group in state["param_groups"]:
        group.update(impl)
    spec.optimizer.load_state_dict(state)
    spec.run.truncate_log(ckpt.epoch)
    return ckpt.epoch


def save(spec: LoopSpec, epoch: int) -> None:
    """Checkpoint the module and optimizer after ``epoch`` completed epochs."""
    tensors, data = flatten_optimizer_state(spec.optimizer.state_dict())
    model = {k: v for k, v in spec.module.state_dict().items()}
    state: dict[str, Any] = {"optim": data}
    if spec.hook is not None:
        extra, state["hook"] = spec.hook.state()
        model.update({HOOK_PREFIX + k: v for k, v in extra.items()})
    spec.run.save_checkpoint(Checkpoint(epoch, model, tensors, state), spec.keep_checkpoints)


def train_step(optimizer: torch.optim.Optimizer, step: Callable[[Tensor, torch.Generator], Any],
               idx: Tensor, gen: torch.Generator, device: torch.device, precision: str = "fp32") -> Any:
    """One optimisation step: zero grads, loss under autocast, backward, update.

    Args:
        optimizer: optimizer over the trained parameters.
        step: (batch row positions (B,) int64 CPU tensor, generator) -> LossOutput.
        idx: (B,) int64 row positions of the batch.
        gen: generator for random locations.
        device: the training device (autocast type).
        precision: ``fp32`` or ``bf16``.

    Returns:
        The step's LossOutput (computed before the update).
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        out = step(idx, gen)
    out.total.backward()
    optimizer.step()
    return out


def run_epoch(spec: LoopSpec, epoch: int) -> dict[str, Any]:
    """Train one epoch (0-based ``epoch``) and return its log record."""
    s = epoch_seed(spec.seed, epoch, spec.rank)
    seed_all(s)
    gen = torch.Generator(device=spec.device)
    gen.manual_seed(s ^ 0x5EED)
    lr = spec.lr_at(epoch)
    for group in spec.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    if spec.set_mode is not None:
        spec.set_mode(epoch)
    else:
        spec.module.train()
    order = torch.from_numpy(np.ascontiguousarray(spec.epoch_indices(epoch), dtype=np.int64))
    sums: dict[str, Tensor] = {}
    t0 = time.perf_counter()
    desc = f"{spec.stage} {epoch + 1}/{spec.epochs}"
    with progress(int(order.shape[0]), desc, spec.quiet or spec.rank != 0) as bar:
        for idx in iter_batches(order, spec.batch_size):
            out = train_step(spec.optimizer, spec.step, idx, gen, spec.device, spec.precision)
            n = float(idx.shape[0])
            for key, value in {"loss": out.total, **out.terms}.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() * n
            bar.update(int(n))
    seconds = time.perf_counter() - t0
    totals = sum_over_ranks({**sums, "samples": int(order.shape[0])})  # torchrun: all ranks' rows
    samples = int(totals.pop("samples"))
    count = max(samples, 1)
    record: dict[str, Any] = {"stage": spec.stage, "epoch": epoch + 1, "lr": lr}
    record.update({k: float(v) / count for k, v in totals.items()})
    record.update(samples=samples, seconds=seconds, samples_per_s=samples / max(seconds, 1e-9))
    return record


def train_epochs(spec: LoopSpec) -> list[dict[str, Any]]:
    """Resume if possible, then train up to ``spec.epochs``; log and checkpoint each epoch.

    Stops early (checkpointing that epoch) once ``spec.hook.done``.

    Returns:
        The log records of the epochs run in this call (deterministic fields: ``epoch``,
        ``lr``, ``loss`` and the objective's terms).
    """
    start = resume(spec)
    for epoch in range(start, spec.epochs):
        if spec.hook is not None and spec.hook.done:
            break
        record = run_epoch(spec, epoch)
        done = epoch + 1
        if spec.evaluate is not None and spec.eval_every and done % spec.eval_every == 0:
            record["val"] = spec.evaluate(done)
        if spec.hook is not None:
            spec.hook.after_epoch(done, record)
        spec.run.log(record)
        spec.history.append(record)
        stop = spec.hook is not None and spec.hook.done
        if done % spec.checkpoint_every == 0 or done == spec.epochs or stop:
            save(spec, done)
    return spec.history
