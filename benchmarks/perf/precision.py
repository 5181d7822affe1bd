"""bf16 vs float32 on a small GeoWorld, end to end (the GPU script's faithfulness check).

Pre-trains and fine-tunes the same seeded model twice, once per precision, and prints both
fused top-1 values; exits 1 when they differ by more than 0.5 points (issue 6).

    python benchmarks/perf/precision.py [--device cuda] [--preset small]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--tolerance", type=float, default=0.005)
    a = ap.parse_args()
    from geocsp.data import load_dataset, make_world
    from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config

    ds = load_dataset(make_world(a.preset, seed=0))
    top1 = {}
    with tempfile.TemporaryDirectory() as tmp:
        for prec in ("fp32", "bf16"):
            sets = [f"device={a.device}", f"precision={prec}", "quiet=true", "data.batch_size=256"]
            pre = resolve_config(PretrainConfig, overrides=[*sets, "data.epochs=5"])
            pretrain(pre, ds, Path(tmp) / f"pre-{prec}")
            ft = resolve_config(FinetuneConfig, stage="finetune",
                                overrides=[*sets, "data.epochs=20", "ratio=0.1"])
            m = finetune(ft, ds, Path(tmp) / f"ft-{prec}", init=Path(tmp) / f"pre-{prec}")
            top1[prec] = m["fused"]["top1"]
    ok = abs(top1["bf16"] - top1["fp32"]) <= a.tolerance
    print("PRECISION " + json.dumps({**top1, "image_top1": m["image"]["top1"], "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
