"""Interleaved A/B of ``geocsp demo`` wall time: an earlier commit against the working tree (issue 19).

Checks out ``--before`` (a git revision) into a temporary worktree and runs ``python -m geocsp
demo`` from it and from this checkout in turn, round by round (the order alternating), each
into a fresh output folder so no run is reused (the GeoWorld cache is shared: generate it
once first). Prints per-variant median (min-max) wall seconds, the per-round ratio, and
checks that both variants wrote the same tables (results.md); writes JSON with ``--json``.

    python benchmarks/demo_ab.py --before HEAD~1 [--rounds 3] [--quick] [--json FILE]
    python benchmarks/demo_ab.py --before HEAD~1 --cli "bench paper --methods kde --seeds 3"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(src: Path, out: Path, quick: bool, cli: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "geocsp", *shlex.split(cli), "--no-figures", "--out", str(out),
           *(["--quick"] if quick else [])]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    text = (out / "results.md").read_text() if (out / "results.md").is_file() else done.stdout
    return wall, "\n".join(line for line in text.splitlines() if line.startswith("|"))  # the tables only


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="git revision of variant A")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cli", default="demo",
                    help="the geocsp command to time (default demo), e.g. 'bench paper --methods kde --seeds 3'")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before], check=True,
                       capture_output=True)
        try:
            variants = {"before": tree / "src", "after": ROOT / "src"}
            walls: dict[str, list[float]] = {k: [] for k in variants}
            tables: dict[str, set[str]] = {k: set() for k in variants}
            for r in range(args.rounds):
                order = list(variants) if r % 2 == 0 else list(reversed(variants))
                for name in order:
                    wall, table = _run(variants[name], Path(tmp) / f"{name}-{r}", args.quick, args.cli)
                    walls[name].append(wall)
                    tables[name].add(table)
                    print(f"round {r} {name}: {wall:.1f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    ratios = [b / a for a, b in zip(walls["before"], walls["after"], strict=True)]
    print(f"\n| variant | wall s, median (min-max) over {args.rounds} rounds |\n|---|---|")
    for name, w in walls.items():
        print(f"| {name} | {statistics.median(w):.1f} ({min(w):.1f}-{max(w):.1f}) |")
    print(f"after / before per round: median {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
    same = tables["before"] == tables["after"] and len(tables["after"]) == 1
    print(f"same tables in every run: {same}")
    if args.json is not None:
        args.json.write_text(json.dumps({"before": args.before, "cli": args.cli, "quick": args.quick, "walls": walls,
                                         "ratios": ratios, "same_table": same}, indent=1))


if __name__ == "__main__":
    main()
