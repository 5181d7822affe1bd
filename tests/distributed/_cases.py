"""What the ranks run (``pool.run(fn, ...)`` calls ``fn(info, ...)``) and the shared
builders the single-process references use, so both sides build identical models/data."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from geocsp.distributed import (
    DistInfo,
    all_gather_with_grad,
    all_reduce_sum,
    barrier,
    ddp_step,
    is_main_process,
    make_dist_context,
    seed_for_rank,
    shard_range,
)
from geocsp.evaluation.metrics import MetricAccumulator
from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.objectives import DistContext, LossOutput, PretrainBatch, create_objective
from geocsp.objectives.types import LOCAL

B, D, DIM, C = 4, 5, 6, 3
"""Local batch per rank, image-feature dim, embedding dim d, negatives per sample."""
LR = 0.1


def build_model(name: str, overrides: dict[str, Any]) -> nn.ModuleDict:
    """Seeded float64 ``{"encoder", "projection", "objective"}`` (real LocationEncoder, dropout
    in its FFN; callers put it in eval mode so both sides see identical dropout: none)."""
    torch.manual_seed(0)
    enc = LocationEncoder(
        LocationEncoderConfig(
            encoder="sphereC+",
            encoder_args={"num_scales": 4},
            network="ffn",
            network_args={"hidden_dim": 16, "dropout": 0.3},
            dim=DIM,
        )
    )
    obj = create_objective(name, loc_dim=DIM, img_dim=D, **overrides)
    return nn.ModuleDict(
        {"encoder": enc, "projection": nn.Linear(D, DIM), "objective": obj}
    ).double()


def global_batch(world: int, c: int, seed: int = 7) -> PretrainBatch:
    """The (world*B) global batch with fixed negatives (c per row; None when 0), float64."""
    g = torch.Generator().manual_seed(seed)
    n = world * B
    scale, shift = torch.tensor([360.0, 180.0]), torch.tensor([180.0, 90.0])
    lonlat = (torch.rand(n, 2, generator=g) * scale - shift).double()
    feats = torch.randn(n, D, generator=g).double()
    neg = (torch.rand(n, c, 2, generator=g) * scale - shift).double() if c else None
    return PretrainBatch(lonlat, feats, neg)


def rows_of(batch: PretrainBatch, rank: int) -> PretrainBatch:
    """Rank ``rank``'s B consecutive rows of the global batch."""
    sl = slice(rank * B, (rank + 1) * B)
    neg = None if batch.neg_lonlat is None else batch.neg_lonlat[sl]
    return PretrainBatch(batch.lonlat[sl], batch.feats[sl], neg)


def loss_fn(model: nn.ModuleDict, batch: PretrainBatch, dist: DistContext) -> LossOutput:
    """One pre-training step's loss (the trainer's shape: objective(batch, e, W, dist))."""
    return model["objective"](batch, model["encoder"], model["projection"], dist)


def named_grads(model: nn.Module) -> dict[str, np.ndarray]:
    """name -> gradient (float64 NumPy) of every parameter."""
    return {k: p.grad.detach().numpy().copy() for k, p in model.named_parameters()}


def named_params(model: nn.Module) -> dict[str, np.ndarray]:
    """name -> value (float64 NumPy) of every parameter."""
    return {k: p.detach().numpy().copy() for k, p in model.named_parameters()}


def ddp_objective_step(
    info: DistInfo, name: str, overrides: dict[str, Any], gather: bool = True
) -> dict[str, Any]:
    """DDP-wrapped model, local rows x gathered columns (local-only columns when not
    ``gather``, the control): loss, averaged grads, parameters after one SGD step."""
    model = build_model(name, overrides)
    model.eval()  # dropout off on both sides; autograd and DDP are unaffected
    step = ddp_step(model, loss_fn, info)
    batch = global_batch(info.world_size, int(model["objective"].num_negatives))
    out = step(rows_of(batch, info.rank), make_dist_context(info) if gather else LOCAL)
    out.total.backward()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    grads = named_grads(model)
    opt.step()
    mean = all_reduce_sum(out.total.detach().clone()) / info.world_size
    return {
        "local": out.total.item(),
        "mean": float(mean),
        "grads": grads,
        "params": named_params(model),
    }


def single_objective_step(name: str, overrides: dict[str, Any], world: int) -> dict[str, Any]:
    """The single-process reference: the whole (world*B) batch, no DDP, no gather."""
    model = build_model(name, overrides)
    model.eval()
    batch = global_batch(world, int(model["objective"].num_negatives))
    out = loss_fn(model, batch, LOCAL)
    out.total.backward()
    grads = named_grads(model)
    torch.optim.SGD(model.parameters(), lr=LR).step()
    return {"loss": out.total.item(), "grads": grads, "params": named_params(model)}


def gather_weights(world: int, rows: int, k: int) -> list[np.ndarray]:
    """Rank s's (world*rows, k) weights w_s of its loss sum(w_s * gathered)."""
    return [np.random.default_rng(100 + s).normal(size=(world * rows, k)) for s in range(world)]


def gather_grad(info: DistInfo, rows: int, k: int) -> dict[str, np.ndarray]:
    """Gather x_r (rows, k) with grad; loss_r = sum(w_r * gathered); return gathered, dx_r."""
    x = torch.full((rows, k), float(info.rank + 1), dtype=torch.float64) + torch.arange(
        rows * k
    ).reshape(rows, k)
    x.requires_grad_(True)
    w = torch.from_numpy(gather_weights(info.world_size, rows, k)[info.rank])
    gathered = all_gather_with_grad(x)
    (gathered * w).sum().backward()
    return {"x": x.detach().numpy(), "gathered": gathered.detach().numpy(), "grad": x.grad.numpy()}


def metric_shard(info: DistInfo, scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Metrics of this rank's contiguous shard, all-reduced (sum of accumulator states)."""
    start, stop = shard_range(len(labels), info.rank, info.world_size)
    acc = MetricAccumulator()
    acc.update(torch.from_numpy(scores[start:stop]), torch.from_numpy(labels[start:stop]))
    state = all_reduce_sum(acc.state())
    return MetricAccumulator.from_state(state).compute()


def describe(info: DistInfo) -> dict[str, Any]:
    """This rank's view of the job (exercises barrier and the helpers)."""
    barrier()
    ctx = make_dist_context(info)
    return {
        "rank": info.rank,
        "world": info.world_size,
        "main": info.is_main,
        "is_main_process": is_main_process(),
        "ctx": (ctx.rank, ctx.world_size),
        "seed": seed_for_rank(3, info.rank),
        "device": str(info.device),
    }


def sharded_protocol(
    info: DistInfo,
    img: np.ndarray,
    loc: np.ndarray,
    labels: np.ndarray,
    has: np.ndarray,
    beta: float,
) -> dict[str, Any]:
    """evaluate_scores_reduced over this rank's shard of the rows (shard_rows)."""
    from geocsp.distributed import evaluate_scores_reduced, rank_and_world, shard_rows

    rows = shard_rows(np.arange(len(labels)))
    out = evaluate_scores_reduced(
        img[rows], loc[rows], labels[rows], has[rows], beta=beta, batch_size=3
    )
    return {"metrics": out, "rows": rows, "rank_world": rank_and_world()}


def main_first_order(info: DistInfo, path: str) -> str:
    """Rank 0 writes ``path``; every rank then reads it (main_first)."""
    import pathlib
    import time

    from geocsp.distributed import main_first

    def make() -> str:
        p = pathlib.Path(path)
        if info.rank == 0:
            time.sleep(0.3)  # a slow writer: rank 1 must still wait
            p.write_text("written by 0")
        return p.read_text()

    return main_first(make)


def summed(info: DistInfo) -> dict[str, float]:
    """sum_over_ranks of rank-dependent values."""
    from geocsp.distributed import sum_over_ranks

    return sum_over_ranks({"a": 1.5 * (info.rank + 1), "b": torch.tensor(2.0)})
