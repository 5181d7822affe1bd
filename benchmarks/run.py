"""Performance benchmark of issue 6 at the iNat2018 shapes: one command, a table and JSON.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--items 1,2,3,4,5]
                             [--precision fp32|bf16] [--threads N] [--compile [MODE]]
                             [--world DIR] [--pre-epochs N] [--ft-epochs N]

Items: (1) pre-training step throughput, CSP-MC-BLD at batch 1024 and 4096; (2) fine-tuning
step throughput, full loss, Q = 8,142; (3) evaluation throughput over 24,426 x 8,142;
(4) the whole protocol through the real data path (an ``inat-scale`` GeoWorld on disk,
generated when missing); (5) the roofline ratio of items 1-3: FLOPs per step (from the layer
shapes, benchmarks/perf/flops.py) / step time / FLOP/s of a dense matmul of the step's
dominant shape, measured in the same process and precision. Items 1-3 use synthetic tensors
of the right shapes. Benchmarks are never tests; nothing here asserts a timing.
Writes ``benchmarks/results/perf-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from perf import flops, measure, steps  # noqa: E402

GB = 1024**3


def _timed(fns: dict[str, Any], shape: tuple[int, int, int] | None, a: argparse.Namespace,
           dev: torch.device, warmup: int) -> tuple[dict[str, list[float]], float]:
    """Interleaved timings of ``fns`` (+ the reference product ``ref`` when ``shape``)."""
    ref_flops = 0.0
    if shape is not None:
        ref, ref_flops = measure.matmul_call(*shape, dev, a.precision)
        fns = {**fns, "ref": ref}
    return measure.interleaved(fns, dev, warmup=warmup, repeats=a.repeats), ref_flops


def _roofline(work: float, step_times: list[float], ref_times: list[float], ref_flops: float,
              shape: tuple[int, int, int]) -> dict[str, Any]:
    """Per-round ratio (work / step time) / (reference FLOP/s of the same round): median, range."""
    ratios = [work / ts / (ref_flops / tr) for ts, tr in zip(step_times, ref_times, strict=True)]
    return {"ref_shape": list(shape), "ref_gflop_per_s": ref_flops / statistics.median(ref_times) / 1e9,
            "roofline": statistics.median(ratios), "roofline_min": min(ratios),
            "roofline_max": max(ratios)}


def _step_row(name: str, runner: Any, batch: int, work: flops.Flops, shape: tuple[int, int, int],
              a: argparse.Namespace, dev: torch.device, with_ratio: bool) -> dict[str, Any]:
    t, ref_flops = _timed({"step": runner}, shape if with_ratio else None, a, dev, a.warmup)
    s = measure.summary(t["step"])
    row = {"item": name, "batch": batch, "step_s": s["median"], "step_s_min": s["min"],
           "step_s_max": s["max"], "spread": s["spread"], "samples_per_s": batch / s["median"],
           "gflop_per_step": work.total / 1e9, "gflop_per_s": work.total / s["median"] / 1e9}
    if with_ratio:
        row.update(_roofline(work.total, t["step"], t["ref"], ref_flops, shape))
    return row


def item_pretrain(a: argparse.Namespace, dev: torch.device, ratio: bool) -> list[dict[str, Any]]:
    """Item 1: CSP-MC-BLD steps at the paper-inat2018 settings, D = 2048."""
    rows = 16_384 if a.quick else 131_072  # random rows of a (rows, 2048) float32 store
    split = steps.synthetic_split(rows, steps.INAT["feature_dim"], steps.INAT["num_classes"])
    out = []
    for batch in (1024,) if a.quick else (1024, 4096):
        run = steps.pretrain_stepper(split, batch, dev, a.precision, a.compile)
        work = flops.pretrain_step(flops.Shapes(), batch)
        shape = flops.dominant_matmul("pretrain", flops.Shapes(), batch)
        out.append(_step_row("1 pretrain", run, batch, work, shape, a, dev, ratio))
    return out


def item_finetune(a: argparse.Namespace, dev: torch.device, ratio: bool) -> list[dict[str, Any]]:
    """Item 2: full-loss fine-tuning steps, Q = 8,142 (no image features needed)."""
    q = steps.INAT["num_classes"]
    split = steps.synthetic_split(22_000, 0, q)  # ~ the 5 % subset of 437,513 rows
    batch = 1024
    run = steps.finetune_stepper(split, q, batch, dev, a.precision, a.compile)
    shape = flops.dominant_matmul("finetune", flops.Shapes(), batch)
    return [_step_row("2 finetune", run, batch, flops.finetune_step(flops.Shapes(), batch), shape,
                      a, dev, ratio)]


def item_evaluate(a: argparse.Namespace, dev: torch.device, ratio: bool) -> list[dict[str, Any]]:
    """Item 3: P(y|x) for the val rows, then image / location / fused top-k, MRR, NLL, ECE."""
    n = 4096 if a.quick else steps.INAT["val_rows"]
    loc, metrics = steps.evaluation_runner(n, steps.INAT["num_classes"], dev, a.precision)
    shape = flops.dominant_matmul("evaluate", flops.Shapes(), 4096)
    t, ref_flops = _timed({"loc": loc, "metrics": metrics}, shape if ratio else None, a, dev, 1)
    totals = [x + y for x, y in zip(t["loc"], t["metrics"], strict=True)]
    total = statistics.median(totals)
    work = flops.evaluation(flops.Shapes(), n)
    row = {"item": "3 evaluate", "batch": n, "step_s": total, "prior_s": statistics.median(t["loc"]),
           "metrics_s": statistics.median(t["metrics"]), "spread": measure.summary(totals)["spread"],
           "samples_per_s": n / total, "gflop_per_step": work.total / 1e9,
           "gflop_per_s": work.total / total / 1e9}
    if ratio:
        row.update(_roofline(work.total, totals, t["ref"], ref_flops, shape))
        row["roofline_prior_only"] = _roofline(work.total, t["loc"], t["ref"], ref_flops, shape)["roofline"]
    return [row]


def item_protocol(a: argparse.Namespace) -> list[dict[str, Any]]:
    """Item 4: the protocol in a child process (its own peak RSS), on an on-disk world."""
    from geocsp.data.geoworld import make_world

    preset = "small" if a.quick else "inat-scale"
    t0 = time.perf_counter()
    world = Path(a.world) if a.world else make_world(preset, seed=0, device=a.device)
    gen_s = time.perf_counter() - t0
    pre, ft = (1, 2) if a.quick else (a.pre_epochs, a.ft_epochs)
    cmd = [sys.executable, str(HERE / "perf" / "protocol.py"), "--data", str(world),
           "--out", str(Path(a.run_dir)), "--pre-epochs", str(pre), "--ft-epochs", str(ft),
           "--device", a.device, "--precision", a.precision, "--threads", str(a.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"item 4 failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    r = json.loads(line[len("RESULT "):])
    full = _extrapolate(r, 30, 200)
    row = {"item": "4 protocol", "world": str(world), "world_gen_s": gen_s, **r,
           "extrapolated_wall_s_30_200": full,
           "peak_rss_gb": r["peak_rss_bytes"] / GB, "peak_anon_gb": r["peak_anon_bytes"] / GB,
           "rss_budget_gb": (1.3 * r["feature_bytes"] + 2 * GB) / GB}
    return [row]


def _extrapolate(r: dict[str, Any], pre: int, ft: int) -> float:
    """Wall time at ``pre`` / ``ft`` epochs: fixed costs + mean epoch time x epochs."""
    pe, fe = r["pretrain_epoch_s"], r["finetune_epoch_s"]
    fixed = r["load_s"] + (r["pretrain_s"] - sum(pe)) + (r["finetune_s"] - sum(fe))
    return fixed + sum(pe) / max(len(pe), 1) * pre + sum(fe) / max(len(fe), 1) * ft


def print_table(rows: list[dict[str, Any]], env: dict[str, Any]) -> None:
    print(f"\ngeocsp perf — {env['device_name']} ({env['device']}), torch {env['torch']}, "
          f"{env['threads']} threads, precision {env['precision']}, load {' '.join(env['loadavg'])}")
    head = f"{'item':<12}{'batch':>7}{'step s':>10}{'samples/s':>12}{'GFLOP/s':>9}{'ref GF/s':>9}{'roofline':>9}{'spread':>7}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        if r["item"].startswith("4"):
            continue
        ref = f"{r['ref_gflop_per_s']:9.1f}" if "ref_gflop_per_s" in r else f"{'-':>9}"
        roof = f"{r['roofline']:9.2f}" if "roofline" in r else f"{'-':>9}"
        print(f"{r['item']:<12}{r['batch']:>7}{r['step_s']:>10.4f}{r['samples_per_s']:>12,.0f}"
              f"{r['gflop_per_s']:>9.1f}{ref}{roof}{r['spread']:>7.2f}")
    for r in rows:
        if r["item"].startswith("4"):
            gpu = f", device peak {r['cuda_peak_bytes'] / GB:.2f} GB" if r.get("cuda_peak_bytes") else ""
            print(f"4 protocol ({Path(r['world']).name}): {r['pre_epochs']} pre + {r['ft_epochs']} ft epochs "
                  f"in {r['wall_s']:.1f} s "
                  f"(load {r['load_s']:.1f} s, world generation {r['world_gen_s']:.1f} s); "
                  f"{'' if (r['pre_epochs'], r['ft_epochs']) == (30, 200) else 'EXTRAPOLATED '}"
                  f"30 + 200 epochs: {r['extrapolated_wall_s_30_200']:.0f} s; "
                  f"peak RSS {r['peak_rss_gb']:.2f} GiB, of it private (anon) {r['peak_anon_gb']:.2f} GiB "
                  f"(budget 1.3 x features + 2 GiB = {r['rss_budget_gb']:.2f} GiB){gpu}; "
                  f"fused top-1 {r['fused_top1']}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, batch 1024 only, small world")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--items", default="1,2,3,4,5")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                    help="default: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--compile", nargs="?", const="true", default="false",
                    choices=("false", "true", "reduce-overhead", "max-autotune"),
                    help="torch.compile the encoder and W (a bare --compile: torch's default mode; "
                         "reduce-overhead: CUDA graphs)")
    ap.add_argument("--world", default=None, help="an existing inat-scale world directory")
    ap.add_argument("--pre-epochs", type=int, default=None,
                    help="item 4 pre-training epochs (default 30 on CUDA; 3 on CPU, extrapolated to 30)")
    ap.add_argument("--ft-epochs", type=int, default=None,
                    help="item 4 fine-tuning epochs (default 200 on CUDA; 20 on CPU, extrapolated to 200)")
    ap.add_argument("--run-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "geocsp-bench-run"))
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/perf-<device>.json)")
    a = ap.parse_args(argv)
    a.precision = a.precision or ("bf16" if a.device.startswith("cuda") else "fp32")
    a.repeats = a.repeats or (3 if a.quick else 5)
    cuda = a.device.startswith("cuda")
    a.pre_epochs = a.pre_epochs if a.pre_epochs is not None else (30 if cuda else 3)
    a.ft_epochs = a.ft_epochs if a.ft_epochs is not None else (200 if cuda else 20)
    return a


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    a = parse(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    items = {int(x) for x in a.items.split(",") if x.strip()}
    ratio = 5 in items
    rows: list[dict[str, Any]] = []
    for k, fn in ((1, item_pretrain), (2, item_finetune), (3, item_evaluate)):
        if k in items:
            rows += fn(a, dev, ratio)
            print(json.dumps(rows[-1]), flush=True)
    if 4 in items:
        rows += item_protocol(a)
    compiled = {"false": False, "true": True}.get(a.compile, a.compile)  # as earlier JSON files: a bool, or the mode
    env = {**measure.environment(dev), "precision": a.precision, "compile": compiled,
           "quick": a.quick, "argv": sys.argv[1:]}
    print_table(rows, env)
    out = Path(a.out) if a.out else HERE / "results" / f"perf-{dev.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return rows


if __name__ == "__main__":
    main()
