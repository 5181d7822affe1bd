"""bf16 vs float32 on a small GeoWorld, end to end (the GPU script's faithfulness check).

Pre-trains and fine-tunes the same seeded model twice, once per precision, and prints both
fused top-1 values; exits 1 when they differ by more than 0.5 points (issue 6), or when the
check is vacuous: a prior too weak to change any fused top-1 decision (fused == image-only
top-1 in float32) would make any precision pass. 5 + 60 epochs at 10 % labels give a prior
that does (small world, CPU: fused 0.5425 vs image 0.5175); 5 + 20, the first version of
this script, did not (both 0.5175).

    python benchmarks/perf/precision.py [--device cuda] [--preset small]
           [--seeds 5] [--epochs 5,60] [--set KEY=VALUE ...] [--out JSON]

With ``--seeds N`` every seed is one bf16/fp32 pair (one JSON line each); the exit status
judges the mean |bf16 - fp32| over the seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any


def run_pair(ds: Any, device: str, seed: int, epochs: tuple[int, int], extra: list[str]) -> dict[str, Any]:
    """Fused / location / image top-1 of one seed's fp32 and bf16 runs."""
    from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config

    r: dict[str, Any] = {"seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        for prec in ("fp32", "bf16"):
            sets = [f"device={device}", f"precision={prec}", "quiet=true", "data.batch_size=256",
                    f"seed={seed}", *extra]
            pre = resolve_config(PretrainConfig, overrides=[*sets, f"data.epochs={epochs[0]}"])
            pretrain(pre, ds, Path(tmp) / f"pre-{prec}")
            ft = resolve_config(FinetuneConfig, stage="finetune",
                                overrides=[*sets, f"data.epochs={epochs[1]}", "ratio=0.1"])
            m = finetune(ft, ds, Path(tmp) / f"ft-{prec}", init=Path(tmp) / f"pre-{prec}")
            r[prec] = m["fused"]["top1"]
            r[f"{prec}_location"] = m["location"]["top1"]
            r["image_top1"] = m["image"]["top1"]
    return r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--tolerance", type=float, default=0.005)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", default="5,60", help="pre-training,fine-tuning epochs")
    ap.add_argument("--set", action="append", default=[], help="extra config override (repeatable)")
    ap.add_argument("--out", default=None, help="also write the per-seed records to this JSON file")
    a = ap.parse_args()
    from geocsp.data import load_dataset, make_world

    ds = load_dataset(make_world(a.preset, seed=0))
    pre_ep, ft_ep = (int(x) for x in a.epochs.split(","))
    rows = []
    for seed in range(a.seeds):
        rows.append(run_pair(ds, a.device, seed, (pre_ep, ft_ep), a.set))
        print(json.dumps(rows[-1]), flush=True)
    diff = statistics.mean(abs(r["bf16"] - r["fp32"]) for r in rows)
    meaningful = all(r["fp32"] != r["image_top1"] for r in rows)
    ok = meaningful and diff <= a.tolerance
    summary = {"fp32": statistics.mean(r["fp32"] for r in rows),
               "bf16": statistics.mean(r["bf16"] for r in rows), "mean_abs_diff": diff,
               "image_top1": rows[0]["image_top1"], "prior_changes_top1": meaningful, "ok": ok}
    print("PRECISION " + json.dumps(summary))
    if a.out:
        Path(a.out).write_text(json.dumps({"argv": sys.argv[1:], "seeds": rows, "summary": summary},
                                          indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
