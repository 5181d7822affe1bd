"""The demo fine-tuning step with the CPU dropout factor of today against the previous mask expression.

Issue 19 item 2, fourth pass (benchmarks/NOTES.md). ``before``: ``Dropout.forward`` as it was
up to 7540cbd — ``(bits >= k).to(dtype) * scale`` via :func:`geocsp.nets.base.dropout_keep_mask`;
``after``: today's :func:`geocsp.nets.base.dropout_multiplier`. Both draw the same random words
and give the same values bit for bit (tests/training/test_precision.py), so only time differs.
The step is :class:`stacked_step.DemoStep` (geoworld-demo shapes, ``loop.train_step``). Blocks of
``--steps`` steps alternate the variants (the order flips each round); prints the median
(min-max) ms per step and the per-round ratio after / before. Not a test: nothing is asserted.

    OMP_NUM_THREADS=1 python benchmarks/dropout_step.py [--rounds 9] [--steps 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from geocsp.nets import base

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stacked_step import DemoStep


def before_forward(self: base.Dropout, x: torch.Tensor) -> torch.Tensor:
    """``Dropout.forward`` up to 7540cbd (the bool keep mask, then a float copy)."""
    p = float(self.p)
    if not self.training or x.device.type != "cpu" or p <= 0.0 or p >= 1.0 or self.inplace:
        return F.dropout(x, p, self.training, self.inplace)
    keep, p_eff = base.dropout_keep_mask(x.shape, p, x.device)
    if p_eff <= 0.0:
        return x
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p_eff))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=200, help="timed steps per variant per round")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    step = DemoStep(torch.device("cpu"))
    forwards = {"before": before_forward, "after": base.Dropout.forward}
    times: dict[str, list[float]] = {k: [] for k in forwards}
    for _ in range(20):  # warm-up
        step()
    try:
        for rnd in range(args.rounds):
            for name in (list(forwards) if rnd % 2 == 0 else list(reversed(forwards))):
                base.Dropout.forward = forwards[name]  # type: ignore[method-assign]
                t = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - t) / args.steps * 1e3)
    finally:
        base.Dropout.forward = forwards["after"]  # type: ignore[method-assign]
    ratios = [a / b for a, b in zip(times["after"], times["before"], strict=True)]
    where = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, cpu, {torch.get_num_threads()} thread(s), {where}")
    print("| variant | ms / step, median (min-max) |\n|---|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.3f} ({min(ts):.3f}-{max(ts):.3f}) |")
    print(f"after / before per round: median {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": where, "threads": torch.get_num_threads(), "torch": torch.__version__,
                                         "rounds": args.rounds, "steps": args.steps, "ms": times,
                                         "ratio_median": statistics.median(ratios), "ratios": ratios}, indent=1) + "\n")


if __name__ == "__main__":
    main()
