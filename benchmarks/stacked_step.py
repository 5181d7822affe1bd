"""Would training R runs together (stacked weights) make ``geocsp demo`` faster? (issue 19 item 2)

The demo is ~44,000 tiny fine-tuning steps (benchmarks/NOTES.md, "where geocsp demo time
goes"). This measures, on the demo's own fine-tuning shapes (``geoworld-demo`` preset: grid PE,
FFN 256 hidden, d = 128, 150 classes, batch 256 + 256 background rows, presence-only ``full``
loss, Adam), the cost of one optimisation step of

* ``single``: geocsp's own model and loss, one run (``training.loop.train_step``);
* ``stacked R``: the same network with every Linear / LayerNorm holding R replicas' weights
  ((R, in, out), one ``baddbmm``), R independent batches of the same size, the per-replica
  losses summed (each replica's gradient is its own), one Adam over the stacked tensors.

Rounds alternate the variants; prints the median (min-max) ms per step, and the ratio
``stacked R / (R x single)`` (below 1 = stacking saves time; the demo would save about
1 - ratio of its training time, 86 % of its wall time). Not a test: nothing is asserted.

    OMP_NUM_THREADS=1 python benchmarks/stacked_step.py [--replicas 2,3,5] [--rounds 5] [--json FILE]
    python benchmarks/stacked_step.py --device cuda          # benchmarks/gpu.sh runs this
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from geocsp.nets import LocationEncoder
from geocsp.objectives import create_finetune_loss
from geocsp.training.config import FinetuneConfig
from geocsp.training.loop import make_optimizer, train_step
from geocsp.training.presets import resolve_config


class StackedLinear(nn.Module):
    """R Linear layers applied to (R, N, in) at once (weights (R, in, out), bias (R, 1, out))."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([lin.weight.detach().cpu().t() for lin in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([lin.bias.detach().cpu()[None] for lin in layers]))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class StackedLayerNorm(nn.Module):
    """R LayerNorms over the last dim of (R, N, d)."""

    def __init__(self, norms: list[nn.LayerNorm]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([n.weight.detach().cpu()[None] for n in norms]))
        self.bias = nn.Parameter(torch.stack([n.bias.detach().cpu()[None] for n in norms]))
        self.eps = norms[0].eps

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.bias, torch.nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps), self.weight)


def stack_network(net: nn.Module, replicas: int, cfg: FinetuneConfig) -> nn.Module:
    """A copy of ``net`` whose Linear / LayerNorm modules hold ``replicas`` fresh replicas each."""
    nets = [net] + [LocationEncoder(cfg.model).network for _ in range(replicas - 1)]
    stacked = LocationEncoder(cfg.model).network
    names = [name for name, m in stacked.named_modules() if isinstance(m, (nn.Linear, nn.LayerNorm))]
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = stacked.get_submodule(parent_name) if parent_name else stacked
        mods = [n.get_submodule(name) for n in nets]
        new = StackedLinear(mods) if isinstance(mods[0], nn.Linear) else StackedLayerNorm(mods)
        setattr(parent, leaf, new)
    return stacked


class DemoStep:
    """One fine-tuning step of the demo's shapes as geocsp trains it (``loop.train_step``); call it to step.

    Attributes: ``cfg`` (the geoworld-demo FinetuneConfig), ``q`` classes, ``b`` batch rows, ``loss``,
    ``encoder``, ``head``, ``lonlat(n)`` (random (n, 2) degrees), ``x_all`` / ``y_all`` (4,096 rows).
    """

    def __init__(self, dev: torch.device, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.dev = dev
        self.cfg = resolve_config(FinetuneConfig, stage="finetune", preset="geoworld-demo")
        self.q, self.b = 150, int(self.cfg.data.batch_size)
        self.loss = create_finetune_loss(self.cfg.loss.name, **dict(self.cfg.loss.args))
        self.encoder = LocationEncoder(self.cfg.model)
        self.head = nn.Linear(self.encoder.dim, self.q, bias=False)
        model = nn.ModuleDict({"encoder": self.encoder, "head": self.head}).to(dev).train()
        self.opt = make_optimizer(list(model.parameters()), self.cfg.optim, dev)  # as finetune builds it
        self.x_all, self.y_all = self.lonlat(4096), torch.randint(0, self.q, (4096,), device=dev)
        self.gen = torch.Generator(device=dev).manual_seed(seed)

    def lonlat(self, n: int) -> Tensor:
        """(n, 2) uniform lon, lat degrees."""
        return torch.stack([torch.rand(n, device=self.dev) * 360 - 180, torch.rand(n, device=self.dev) * 180 - 90], 1)

    def _step(self, idx: Tensor, gen: torch.Generator) -> Any:
        emb = self.encoder(torch.cat([self.x_all[idx], self.lonlat(idx.shape[0])]))
        return self.loss(self.head(emb[: idx.shape[0]]), self.y_all[idx], self.head(emb[idx.shape[0]:]))

    def __call__(self) -> Any:
        idx = torch.randint(0, 4096, (self.b,), device=self.dev)
        return train_step(self.opt, self._step, idx, self.gen, self.dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", default="2,3,5")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60, help="timed steps per variant per round")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    demo = DemoStep(dev)
    cfg, q, b, loss, encoder = demo.cfg, demo.q, demo.b, demo.loss, demo.encoder
    lonlat, x_all, y_all = demo.lonlat, demo.x_all, demo.y_all
    variants: dict[str, Any] = {"single": demo}
    for r in [int(v) for v in args.replicas.split(",")]:
        net = stack_network(encoder.network, r, cfg).to(dev)
        heads = nn.Parameter(torch.stack([nn.Linear(encoder.dim, q, bias=False).weight.detach().t()
                                          for _ in range(r)]).to(dev))
        opt = make_optimizer([*net.parameters(), heads], cfg.optim, dev)  # as DemoStep (and finetune)
        net.train()

        def stacked_step(net: nn.Module = net, heads: Tensor = heads, opt: Any = opt, r: int = r) -> Any:
            opt.zero_grad(set_to_none=True)
            idx = torch.randint(0, 4096, (r, b), device=dev)
            x = torch.cat([x_all[idx], lonlat(r * b).view(r, b, 2)], 1)  # (R, 2B, 2)
            pe = encoder.position(x.reshape(-1, 2)).view(r, 2 * b, -1)
            emb = net(pe)  # (R, 2B, d): the head runs per part (no zero-filled slice gradients)
            pos, bg = torch.bmm(emb[:, :b], heads), torch.bmm(emb[:, b:], heads)
            # every replica's mean loss, summed: one call over the R batches' rows, times R
            total = loss(pos.reshape(r * b, q), y_all[idx].reshape(-1), bg.reshape(r * b, q)).total * r
            total.backward()
            opt.step()
            return total

        variants[f"stacked {r}"] = stacked_step

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        for _ in range(5):
            fn()
    for rnd in range(args.rounds):
        order = list(variants) if rnd % 2 == 0 else list(reversed(variants))
        for name in order:
            sync()
            t = time.perf_counter()
            for _ in range(args.steps):
                variants[name]()
            sync()
            times[name].append((time.perf_counter() - t) / args.steps * 1e3)
    single = times["single"]
    rows = []
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} thread(s), {where}")
    print("| variant | ms / step | runs | ms per run-step | ratio to R x single (per round) |")
    print("|---|---:|---:|---:|---:|")
    for name, ts in times.items():
        r = 1 if name == "single" else int(name.split()[1])
        ratios = [t / (r * s) for t, s in zip(ts, single, strict=True)]
        row = {"variant": name, "replicas": r, "ms_median": statistics.median(ts), "ms_min": min(ts),
               "ms_max": max(ts), "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
               "ratio_max": max(ratios)}
        rows.append(row)
        print(f"| {name} | {row['ms_median']:.2f} ({row['ms_min']:.2f}-{row['ms_max']:.2f}) | {r} | "
              f"{row['ms_median'] / r:.2f} | {row['ratio_median']:.2f} ({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) |")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": where, "threads": torch.get_num_threads(), "torch": torch.__version__,
                                         "batch": b, "classes": q, "rounds": args.rounds, "steps": args.steps,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
