"""Issue 15's done criteria on a `geocsp bench paper` / `geocsp demo` results.json.

In every (method, ratio) cell: the calibrated fusion's fused top-1 >= Img. Only - 0.3 points, and
>= the paper fusion - 0.5 points wherever the paper fusion helps (paper > Img. Only).

    python benchmarks/issue15_check.py benchmarks/results/issue15/longtail5-results.json

Prints the worst margins and every failing cell; exits 1 when a cell fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def check(path: Path) -> list[str]:
    """The failing cells of one results.json (empty when all pass); prints the worst margins."""
    rows = json.loads(path.read_text())["rows"]
    img = {r["ratio"]: 100 * r["top1_mean"] for r in rows if r["method"] == "Img. Only"}
    worst_img, worst_paper, fails = float("inf"), float("inf"), []
    for r in rows:
        if r["method"] == "Img. Only":
            continue
        lam, paper, cal = r["ratio"], 100 * r["top1_mean"], 100 * r["cal_top1_mean"]
        worst_img = min(worst_img, cal - img[lam])
        if cal - img[lam] < -0.3:
            fails.append(f"{r['method']} λ={lam}: calibrated {cal:.2f} < image-only {img[lam]:.2f} - 0.3")
        if paper > img[lam]:
            worst_paper = min(worst_paper, cal - paper)
            if cal - paper < -0.5:
                fails.append(f"{r['method']} λ={lam}: calibrated {cal:.2f} < paper {paper:.2f} - 0.5")
    print(f"{path}: min(calibrated - image-only) = {worst_img:+.2f} pp; "
          f"min(calibrated - paper | paper helps) = {worst_paper:+.2f} pp")
    return fails


def main(argv: list[str]) -> int:
    """Check every results.json given; 1 when any cell fails."""
    fails = [f for arg in argv for f in check(Path(arg))]
    print("\n".join(fails) or "all cells pass")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
