"""Issue 16's comparison: every method against the better Sup. Only of its (fusion, ratio) cell.

Reads a `geocsp bench paper` output directory (results.csv + comparisons.csv, whose paired
per-seed differences against each Sup. Only it uses) and prints one markdown table per fusion:
mean fused top-1 %, paired difference in points ± 95 % half-width, and the relative gain.

    python benchmarks/best_sup.py /tmp/h16a-default-3seeds [--methods "CSP zero-shot;CSP-MC-BLD"] [--rows]

``--methods`` is separated by ``;`` (method names may hold commas); ``--rows`` puts one method per
row and one λ per column.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

SUP = ("Sup. Only (wrap)", "Sup. Only (grid)")
COLUMN = {"paper": "top1_mean", "calibrated": "cal_top1_mean"}


def tables(out: Path, methods: list[str] | None = None, rows: bool = False) -> str:
    """The markdown tables (one per fusion) of a bench output directory."""
    res = pd.read_csv(out / "results.csv")
    comp = pd.read_csv(out / "comparisons.csv")
    chosen = methods or [m for m in res["method"].unique() if m not in (*SUP, "Img. Only")]
    lines = []
    for fusion, col in COLUMN.items():
        lines += [f"\n{fusion} fusion: fused top-1 %, difference to the better Sup. Only in points "
                  "(mean ± 95 % half-width, paired over seeds), relative gain\n",
                  "| λ | best Sup. Only | " + " | ".join(chosen) + " |",
                  "|---|---|" + "---|" * len(chosen)]
        for lam in sorted(res["ratio"].unique()):
            cell = res[res["ratio"] == lam].set_index("method")
            best = max(SUP, key=lambda m: float(cell.loc[m, col]))
            row = [f"{lam:g}", f"{best.split('(')[1][:-1]} {100 * cell.loc[best, col]:.2f}"]
            for m in chosen:
                c = comp[(comp["fusion"] == fusion) & (comp["method"] == m) & (comp["baseline"] == best)
                         & ((comp["ratio"] - lam).abs() < 1e-9)].iloc[0]
                row.append(f"{100 * cell.loc[m, col]:.2f} ({100 * c['mean_diff']:+.2f} ± "
                           f"{100 * c['half_width']:.2f}, {100 * c['relative_gain']:+.1f} %)")
            lines.append("| " + " | ".join(row) + " |")
        if rows:  # transpose the block just written: one method per row
            block = [r.strip("|").split(" | ") for r in lines[-len(res["ratio"].unique()):]]
            del lines[-len(block) - 2:]
            lines += ["| method | " + " | ".join(f"λ = {b[0].strip()}" for b in block) + " |",
                      "|---|" + "---|" * len(block),
                      "| best Sup. Only | " + " | ".join(b[1] for b in block) + " |"]
            lines += ["| " + m + " | " + " | ".join(b[2 + j].strip() for b in block) + " |"
                      for j, m in enumerate(chosen)]
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--methods", default=None, help="';'-separated method names (default: all but the baselines)")
    ap.add_argument("--rows", action="store_true", help="one method per row, one ratio per column")
    a = ap.parse_args()
    print(tables(a.out, a.methods.split(";") if a.methods else None, a.rows))
