"""Throughput of every registered position encoder (not a test).

Measures forward and forward+backward (gradient w.r.t. the input locations) in points/s at
a fixed batch size, median over repeats after one warm-up call. Prints a Markdown table and
writes JSON to benchmarks/results/encoders.json.

    python benchmarks/encoders.py            # batch 4096, 7 repeats, CPU
    python benchmarks/encoders.py --quick    # 3 repeats
    python benchmarks/encoders.py --device cuda
    python benchmarks/encoders.py --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from geocsp.encoders import create_encoder, list_encoders
from geocsp.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "encoders.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_encoder(name: str, batch: int, repeats: int, device: torch.device) -> dict[str, object]:
    """Forward and forward+backward throughput of encoder ``name`` (points/s)."""
    enc = create_encoder(name).to(device)
    gen = torch.Generator().manual_seed(0)
    lonlat = torch.rand(batch, 2, generator=gen) * torch.tensor([360.0, 180.0]) - torch.tensor(
        [180.0, 90.0]
    )
    lonlat = lonlat.to(device)

    def forward() -> object:
        with torch.no_grad():
            return enc(lonlat)

    def forward_backward() -> object:
        x = lonlat.clone().requires_grad_(True)
        enc(x).sum().backward()
        return x.grad

    fwd = median_seconds(forward, repeats, device)
    fwd_bwd = median_seconds(forward_backward, repeats, device)
    return {
        "encoder": name,
        "dim": enc.out_dim,
        "forward_points_per_s": batch / fwd,
        "forward_backward_points_per_s": batch / fwd_bwd,
        "forward_ms": fwd * 1e3,
        "forward_backward_ms": fwd_bwd * 1e3,
    }


def markdown(rows: list[dict[str, object]]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| encoder | dim | forward (points/s) | forward+backward (points/s) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['encoder']}` | {r['dim']} | {r['forward_points_per_s']:,.0f} "
            f"| {r['forward_backward_points_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is stable on shared machines)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    device = torch.device(args.device)
    rows = [bench_encoder(n, args.batch, repeats, device) for n in list_encoders()]
    meta = {
        "date": dt.date.today().isoformat(),
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "batch": args.batch,
        "repeats": repeats,
    }
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    print(markdown(rows))
    print(f"\n{meta}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"meta": meta, "results": rows})


if __name__ == "__main__":
    main()
