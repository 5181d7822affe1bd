"""Calibrated fusion chosen by top-1 vs by NLL on calib, on the same trained priors (issue 15).

Re-evaluates every fine-tuning run of a ``geocsp bench paper`` output with the
``fusion_criterion`` it was not made with, through the public :func:`geocsp.training.evaluate`
(the run's own metrics.json, which holds the other, is never touched: the outputs go to a
scratch folder), and prints, per (method,
ratio): Img. Only, the paper's product, calibrated by top-1, calibrated by NLL, and the paired
per-seed difference NLL − top-1 with its 95 % interval. Methods are named from the run
directories (``sup-wrap``, ``from-csp-mc-bld`` ...; ``+kde`` when the run has a class KDE).

    python benchmarks/fusion_criterion.py OUT/runs/finetune --data WORLD_DIR [--ratios 0.05,0.1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from geocsp.data import load_dataset
from geocsp.experiments.stats import paired_ci
from geocsp.training import evaluate


def _label(run: Path) -> tuple[str, float, int]:
    m = re.fullmatch(r"(.+)-d\d+-r([0-9.]+)-s(\d+)-[0-9a-f]+", run.name)
    if m is None:
        raise SystemExit(f"{run}: not a bench fine-tuning run name")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    kde = (cfg.get("kde") or {}).get("shrink") is not None
    return m.group(1) + ("+kde" if kde else ""), float(m.group(2)), int(m.group(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--ratios", default=None, help="only these label ratios, e.g. 0.05,0.1")
    args = ap.parse_args()
    ds = load_dataset(args.data)
    cells: dict[tuple[str, float], dict[int, dict[str, float]]] = defaultdict(dict)
    with tempfile.TemporaryDirectory() as tmp:
        for run in sorted(p for p in args.runs.iterdir() if (p / "metrics.json").is_file()):
            method, ratio, seed = _label(run)
            if args.ratios is not None and ratio not in {float(r) for r in args.ratios.split(",")}:
                continue
            own = json.loads((run / "metrics.json").read_text())  # fitted with the run's own criterion
            row: dict[str, float] = {"image": own["image"]["top1"], "paper": own["fused"]["top1"],
                                     own["fusion"].get("criterion") or "top1": own["fused_calibrated"]["top1"]}
            for crit in ("top1", "nll"):
                if crit not in row:
                    m = evaluate(run, ds, out=Path(tmp) / f"{run.name}-{crit}.json", fusion_criterion=crit)
                    row[crit] = m["fused_calibrated"]["top1"]
            cells[(method, ratio)][seed] = row
    out: list[dict[str, Any]] = []
    print(f"{'method':24s} {'λ':>5s} {'image':>6s} {'paper':>6s} {'top1':>6s} {'nll':>6s}  nll − top1 (95 % CI)")
    for (method, ratio), seeds in sorted(cells.items()):
        rows = [seeds[s] for s in sorted(seeds)]
        mean = {k: 100 * sum(r[k] for r in rows) / len(rows) for k in ("image", "paper", "top1", "nll")}
        ci = paired_ci([100 * (r["nll"] - r["top1"]) for r in rows])
        out.append({"method": method, "ratio": ratio, "seeds": sorted(seeds), **mean, "nll_minus_top1": ci})
        print(f"{method:24s} {ratio:5.2f} {mean['image']:6.2f} {mean['paper']:6.2f} {mean['top1']:6.2f} "
              f"{mean['nll']:6.2f}  {ci['mean']:+.2f} [{ci['low']:+.2f}, {ci['high']:+.2f}]")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": str(args.runs), "data": str(args.data), "cells": out}, indent=1))


if __name__ == "__main__":
    main()
