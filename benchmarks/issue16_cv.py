"""Issue 16 item 4: which prior the model selection (``sup-cv``) chose, per ratio and seed.

Reads the fine-tuning runs of a ``geocsp bench paper ... --methods ...,sup-cv`` output folder
(``OUT/runs/finetune/*/metrics.json`` with a ``select`` record) and writes, per run, the label
ratio, seed, chosen candidate, every candidate's cross-validated score (class-balanced held-out
log P(y|x), nats) and the run's fused top-1 on val under both fusions:

    python benchmarks/issue16_cv.py /tmp/h16c-default --out benchmarks/results/issue16-cv/default-calib-choices.json

Prints one line per run and the count of each choice per ratio.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from geocsp.config import load_yaml


def selections(out: Path) -> list[dict[str, Any]]:
    """One record per model-selection run under ``out/runs/finetune``, sorted by (ratio, seed)."""
    rows = []
    for metrics in sorted((out / "runs" / "finetune").glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        if "select" not in m:
            continue
        cfg = load_yaml(metrics.parent / "config.yaml")
        sel = m["select"]
        rows.append({
            "run": metrics.parent.name, "ratio": float(cfg["ratio"]), "seed": int(cfg["seed"]),
            "chosen": sel["chosen"], "k": sel["k"], "epochs": sel["epochs"], "seen": sel["seen"],
            "scores": {c: round(v["mean"], 4) for c, v in sel["candidates"].items()},
            "cv_top1": {c: round(v["top1"], 4) for c, v in sel["candidates"].items()},
            "fused_top1": m["fused"]["top1"],
            "calibrated_top1": (m.get("fused_calibrated") or {}).get("top1"),
        })
    return sorted(rows, key=lambda r: (r["ratio"], r["seed"]))


def main() -> None:
    """Print and optionally save the selections of one bench output folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_out", type=Path, help="the --out folder of geocsp bench paper")
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = ap.parse_args()
    rows = selections(args.bench_out)
    for r in rows:
        best = ", ".join(f"{c} {s:+.3f}" for c, s in sorted(r["scores"].items(), key=lambda kv: -kv[1]))
        print(f"λ={r['ratio']:.2f} seed {r['seed']}: chose {r['chosen']:<10} (seen {r['seen']:.2f}; {best}); "
              f"fused {100 * r['fused_top1']:.2f}, calibrated {100 * (r['calibrated_top1'] or 0):.2f}")
    for ratio in sorted({r["ratio"] for r in rows}):
        print(f"λ={ratio:.2f}: " + ", ".join(f"{c} ×{n}" for c, n in
                                             Counter(r["chosen"] for r in rows if r["ratio"] == ratio).most_common()))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
