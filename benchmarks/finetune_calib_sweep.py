"""Choose the partial-unfreezing setting of ``csp-partial`` on calib (issue 16 item 3), never on val.

Fine-tunes one CSP-MC-BLD pre-training run (``bench paper``'s, seed 0) with each candidate
``(encoder_lr_scale, unfreeze_after)`` at each ratio, with ``early_stop=fused`` only to log the
calib score every epoch (training is unchanged by it). Per candidate it reports the calib
top-1 of the calibrated fusion (fitted on calib) at the last epoch (what the method without
early stopping gives) and at the best calib epoch (with early stopping). Val is not read by
this script (the runs' final metrics.json evaluate val; their val numbers are not printed).

    PYTHONPATH=src python benchmarks/finetune_calib_sweep.py --init RUNS/pretrain/<csp-mc-bld seed 0> \\
        --world default-calib --out /tmp/sweep --json benchmarks/results/issue16-finetune/calib-sweep.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from geocsp.data.geoworld import make_world
from geocsp.training import FinetuneConfig, finetune, resolve_config

CANDIDATES = [(0.0, 0), (0.03, 0), (0.1, 0), (0.3, 0), (1.0, 0), (0.1, 10), (0.3, 10), (1.0, 10)]
"""``(encoder_lr_scale, unfreeze_after)``; (1.0, 0) is CSP-MC-BLD's full fine-tuning, (0.0, 0) frozen."""


def run(init: str, world: str, out: Path, ratios: list[float], seed: int) -> list[dict[str, object]]:
    """Fine-tune every candidate at every ratio; the calib scores of each."""
    data = make_world(world, seed=0)
    rows = []
    for scale, after in CANDIDATES:
        for ratio in ratios:
            name = f"s{scale:g}-u{after}-r{ratio:g}"
            cfg = resolve_config(FinetuneConfig, stage="finetune", preset="geoworld-demo", overrides=[
                f"init={init}", "device=cpu", "quiet=true", f"seed={seed}", f"ratio={ratio}", "early_stop=fused",
                f"encoder_lr_scale={scale}", f"unfreeze_after={after}"])
            t0 = time.perf_counter()
            m = finetune(cfg, data, out / name)
            log = [json.loads(x) for x in (out / name / "log.jsonl").read_text().splitlines()]
            rows.append({"encoder_lr_scale": scale, "unfreeze_after": after, "ratio": ratio,
                         "calib_top1_last": log[-1]["calib"]["score"], "calib_top1_best": m["early_stop"]["score"],
                         "best_epoch": m["early_stop"]["epoch"], "seconds": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    """Parse the arguments, run the sweep, print and save the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--init", required=True, help="the CSP-MC-BLD pre-training run directory")
    p.add_argument("--world", default="default-calib")
    p.add_argument("--ratios", default="0.05,0.1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = run(a.init, a.world, a.out, [float(r) for r in a.ratios.split(",")], a.seed)
    means = {}
    for scale, after in CANDIDATES:
        mine = [r for r in rows if (r["encoder_lr_scale"], r["unfreeze_after"]) == (scale, after)]
        means[f"{scale:g}/{after}"] = {k: sum(float(str(r[k])) for r in mine) / len(mine)
                                       for k in ("calib_top1_last", "calib_top1_best")}
    for key, m in means.items():
        print(f"encoder_lr_scale/unfreeze_after {key:>8}: calib top-1 last {100 * m['calib_top1_last']:.2f}  "
              f"best epoch {100 * m['calib_top1_best']:.2f}")
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"world": a.world, "init": a.init, "seed": a.seed, "rows": rows, "means": means,
                                      "machine": platform.processor() or platform.machine(),
                                      "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}, indent=1))


if __name__ == "__main__":
    main()
