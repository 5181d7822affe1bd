"""Issue 16 item 3's comparison from `geocsp bench paper` results.json files.

For each fusion (calibrated, fitted on calib; the paper's β = 1) and label ratio: every method's
mean top-1 and its paired per-seed difference (95 % t interval, ``geocsp.experiments.stats``)
against the better Sup. Only of that cell (wrap or grid, by mean), with the relative gain; then
early stopping against the same method without it (same seeds, paired).

    python benchmarks/issue16_finetune_table.py benchmarks/results/issue16-finetune/default-calib/results.json

Prints markdown tables (pasted into docs/results.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from geocsp.experiments.stats import paired_ci

SUP = ("Sup. Only (wrap)", "Sup. Only (grid)")
ES_PAIRS = (("CSP-MC-BLD + ES", "CSP-MC-BLD"), ("Sup. Only (wrap) + ES", "Sup. Only (wrap)"))
FUSIONS = (("calibrated", "cal_seeds"), ("paper (β = 1)", "seeds"))


def _diff(rows: dict[str, Any], a: str, b: str, key: str) -> str:
    ra, rb = rows[a], rows[b]
    assert ra["seed_ids"] == rb["seed_ids"], (a, b)
    ci = paired_ci([100 * (x - y) for x, y in zip(ra[key], rb[key], strict=True)])
    return f"{ci['mean']:+.2f} ± {ci['half_width']:.2f}"


def tables(path: Path) -> str:
    """The markdown of one results.json."""
    data = json.loads(path.read_text())["rows"]
    ratios = sorted({r["ratio"] for r in data})
    out = [f"**{path.parent.name}** (`{path}`)", ""]
    for fusion, key in FUSIONS:
        out += [f"{fusion} fusion | " + " | ".join(f"λ = {100 * lam:g} %" for lam in ratios), "|---" * (1 + len(ratios)) + "|"]
        cells: dict[float, dict[str, Any]] = {lam: {r["method"]: r for r in data if r["ratio"] == lam} for lam in ratios}
        best = {lam: max(SUP, key=lambda m: sum(cells[lam][m][key])) for lam in ratios}
        out.append("best Sup. Only | " + " | ".join(
            f"{best[lam].split('(')[1][:-1]} {100 * sum(cells[lam][best[lam]][key]) / len(cells[lam][best[lam]][key]):.2f}"
            for lam in ratios))
        for method in cells[ratios[0]]:
            if method in SUP or method == "Img. Only":
                continue
            parts = []
            for lam in ratios:
                r, b = cells[lam][method], cells[lam][best[lam]]
                mean, base = sum(r[key]) / len(r[key]), sum(b[key]) / len(b[key])
                parts.append(f"{100 * mean:.2f} ({_diff(cells[lam], method, best[lam], key)}; {100 * (mean / base - 1):+.1f} %)")
            out.append(f"{method} | " + " | ".join(parts))
        for a, b in ES_PAIRS:
            if a in cells[ratios[0]] and b in cells[ratios[0]]:
                out.append(f"{a} − {b} | " + " | ".join(_diff(cells[lam], a, b, key) for lam in ratios))
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print("\n".join(tables(Path(p)) for p in sys.argv[1:]))
