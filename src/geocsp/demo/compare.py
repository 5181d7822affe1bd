"""Paired comparisons of a protocol's methods: per-seed top-1 differences with 95 % intervals.

Every method is compared with ``Img. Only`` and with every ``Sup. Only ...`` row, per label
ratio and for both fusions (the paper's product, ``top1``, and the calibrated fusion,
``cal_top1``). Runs of the same seed share the label subset and the image classifier, so
the difference is taken per seed (:func:`geocsp.experiments.stats.paired_ci`); one seed
gives the difference without an interval.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

from geocsp.experiments.stats import paired_ci

IMG_ONLY = "Img. Only"
SUP_PREFIX = "Sup. Only"
FUSIONS = (("paper", "top1"), ("calibrated", "cal_top1"))
"""(fusion name, record key) of the two fusions compared."""
COMPARISON_KEYS = ("fusion", "method", "baseline", "ratio", "n_seeds", "mean_diff", "sd", "ci95_low",
                   "ci95_high", "half_width", "relative_gain", "diffs")


def baselines(methods: Sequence[str]) -> list[str]:
    """The baselines among ``methods``: ``Img. Only`` and every ``Sup. Only ...`` row, in order.

    >>> baselines(["Img. Only", "Sup. Only (wrap)", "MSE", "Sup. Only (grid)"])
    ['Img. Only', 'Sup. Only (wrap)', 'Sup. Only (grid)']
    """
    return [m for m in methods if m == IMG_ONLY or m.startswith(SUP_PREFIX)]


def _compared(method: str, base: str) -> bool:
    """Every method against Img. Only; every method but the baselines against each Sup. Only."""
    return method != base and method != IMG_ONLY and (base == IMG_ONLY or not method.startswith(SUP_PREFIX))


def compare(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired per-seed top-1 differences of every method against every baseline.

    Every method (Sup. Only rows included) is compared with Img. Only; every method that is
    not a baseline with each Sup. Only row.

    Args:
        records: per-run records (``method, ratio, seed, top1, cal_top1``: see
            :mod:`geocsp.demo.report`).

    Returns:
        One dict per (fusion, baseline, method, ratio) over the seeds both ran (skipped when
        none, or when a fusion's value is missing): ``fusion``, ``method``, ``baseline``,
        ``ratio``, ``n_seeds``, ``mean_diff``, ``sd``, ``ci95_low``, ``ci95_high``,
        ``half_width`` (None for one seed), ``relative_gain`` (mean(method) / mean(baseline)
        − 1; NaN when the baseline's mean is 0) and the per-seed ``diffs``; fractions in [0, 1].
    """
    table: dict[tuple[str, float], dict[int, dict[str, Any]]] = {}
    for rec in records:
        table.setdefault((str(rec["method"]), float(rec["ratio"])), {})[int(rec["seed"])] = rec
    methods = list(dict.fromkeys(m for m, _ in table))
    ratios = sorted({q for _, q in table})
    out = []
    for fusion, key in FUSIONS:
        for base in baselines(methods):
            for method in (m for m in methods if _compared(m, base)):
                for q in ratios:
                    a, b = table.get((method, q), {}), table.get((base, q), {})
                    seeds = sorted(set(a) & set(b))
                    if not seeds:
                        continue
                    va = [float(a[s].get(key, math.nan)) for s in seeds]
                    vb = [float(b[s].get(key, math.nan)) for s in seeds]
                    if any(math.isnan(v) for v in va + vb):
                        continue
                    out.append(_comparison(fusion, method, base, q, va, vb))
    return out


def _comparison(fusion: str, method: str, base: str, ratio: float, va: list[float],
                vb: list[float]) -> dict[str, Any]:
    diffs = [x - y for x, y in zip(va, vb, strict=True)]
    ci = paired_ci(diffs)
    mean_b = sum(vb) / len(vb)
    return {"fusion": fusion, "method": method, "baseline": base, "ratio": ratio, "n_seeds": ci["n"],
            "mean_diff": ci["mean"], "sd": ci["sd"], "ci95_low": ci["low"], "ci95_high": ci["high"],
            "half_width": ci["half_width"],
            "relative_gain": (sum(va) / len(va)) / mean_b - 1.0 if mean_b > 0 else math.nan,
            "diffs": diffs}


def _diff_cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "–"
    mean = f"{100 * c['mean_diff']:+.2f}"
    return mean if c["half_width"] is None else f"{mean} ± {100 * c['half_width']:.2f}"


def format_comparisons(comps: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    """The comparisons as one block per fusion: ``method − baseline`` × ratio.

    Cells are the mean paired difference in top-1 percentage points ``± half-width`` of the
    95 % t interval (no ``±`` for a single seed).

    Args:
        comps: output of :func:`compare`.
        markdown: Markdown pipe tables instead of aligned text.

    Returns:
        The text ("" when there is nothing to compare).
    """
    if not comps:
        return ""
    ratios = sorted({float(c["ratio"]) for c in comps})
    n = max(int(c["n_seeds"]) for c in comps)
    note = ("mean paired difference over seeds, ± half-width of the 95 % t interval"
            if n > 1 else "difference of the single seed (one seed: no confidence interval)")
    blocks = []
    for fusion, _ in FUSIONS:
        mine = [c for c in comps if c["fusion"] == fusion]
        if not mine:
            continue
        pairs = list(dict.fromkeys((c["method"], c["baseline"]) for c in mine))
        cells = {(c["method"], c["baseline"], float(c["ratio"])): c for c in mine}
        header = [f"{fusion} fusion: top-1 gain (pp)", *(f"{q * 100:g} %" for q in ratios)]
        body = [[f"{m} − {b}", *(_diff_cell(cells.get((m, b, q))) for q in ratios)] for m, b in pairs]
        blocks.append(_render(header, body, markdown))
    title = f"Top-1 gains in percentage points: {note}."
    return (f"{title}\n\n" if markdown else f"{title}\n") + "\n".join(blocks)


def _render(header: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in body)]) + "\n"
    widths = [max(len(r[j]) for r in [header, *body]) for j in range(len(header))]
    fmt = [f"{{:<{widths[0]}}}", *(f"{{:>{w}}}" for w in widths[1:])]
    lines = ["  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)) for r in [header, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n"


def comparisons_csv(comps: Sequence[dict[str, Any]]) -> str:
    """CSV text of :func:`compare`'s output (empty cells for a missing interval).

    Args:
        comps: the comparisons.

    Returns:
        The CSV text with a :data:`COMPARISON_KEYS` header; ``diffs`` space-separated.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COMPARISON_KEYS)
    for c in comps:
        w.writerow([*(_csv_value(c[k]) for k in COMPARISON_KEYS[:-1]), " ".join(f"{d:.6f}" for d in c["diffs"])])
    return buf.getvalue()


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6f}" if isinstance(v, float) else str(v)
