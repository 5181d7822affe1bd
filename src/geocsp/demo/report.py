"""Result tables of the demo / paper benchmarks: records, aggregation, formatting and writing.

A *record* is one finished run: ``{"method", "ratio", "seed", "top1", "top3", "mrr"}``
(the paper's fused metrics, fractions in [0, 1]) plus ``cal_top1``, ``cal_top3``,
``cal_mrr`` (the calibrated fusion, docs/fusion.md; NaN when a run lacks it). A *row*
aggregates the records of one (method, ratio) over seeds:

``{"method", "ratio", "top1_mean", "top1_std", "top3_mean", "mrr_mean", "seeds", "seed_ids",
"cal_top1_mean", "cal_top1_std", "cal_seeds"}`` (the ``cal_`` fields None / [] when a seed
lacks the calibrated fusion)

where ``seeds`` is the list of per-seed top-1 (in ``seed_ids`` order) and ``top1_std`` is
the sample standard deviation (ddof = 1; 0 for a single seed). Tables print top-1 in percent
as ``mean (std)``, the shape of the paper's Table 1 (spec §8).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.demo.compare import comparisons_csv, format_comparisons
from geocsp.errors import ConfigError
from geocsp.experiments.plan import Job, Method
from geocsp.io import atomic_write_json, atomic_write_text

RECORD_KEYS = ("method", "ratio", "seed", "top1", "top3", "mrr")
ROW_KEYS = ("method", "ratio", "top1_mean", "top1_std", "top3_mean", "mrr_mean", "seeds", "seed_ids")
CSV_KEYS = ("method", "ratio", "top1_mean", "top1_std", "top3_mean", "mrr_mean", "n_seeds", "seeds",
            "cal_top1_mean", "cal_top1_std", "cal_seeds")
CAL_KEYS = ("cal_top1", "cal_top3", "cal_mrr")


def collect_records(jobs: Sequence[Job], results: dict[str, dict[str, Any]],
                    methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Per-(method, ratio, seed) fused metrics of the fine-tuning runs.

    ``image_only`` methods read the image block of the first fine-tuning run at the same
    ratio and seed (the few-shot classifier), for both fusions. The expected image
    probabilities are ``ratio{λ:.3f}``, or ``default`` at λ = 1.

    Args:
        jobs: the planned jobs (pre-training jobs are skipped).
        results: metrics dicts by run directory (:func:`geocsp.experiments.execute.execute`).
        methods: the table's methods, in row order.

    Returns:
        Records sorted by method order, ratio, seed.

    Raises:
        ConfigError: when a run evaluated with the wrong image classifier (not the ratio's).
    """
    records: list[dict[str, Any]] = []
    image: dict[tuple[float | None, int], dict[str, Any]] = {}
    for job in jobs:
        if job.kind != "finetune":
            continue
        m = results[job.run_dir]
        expected = f"ratio{job.ratio:.3f}"
        if m.get("probs_key") != expected and not (job.ratio == 1.0 and m.get("probs_key") == "default"):
            raise ConfigError(f"{job.run_dir}: evaluated with image probs '{m.get('probs_key')}', expected '{expected}'")
        records.append(_record(job.method, job.ratio, job.seed, m["fused"], m.get("fused_calibrated")))
        image.setdefault((job.ratio, job.seed), m["image"])
    for meth in methods:
        if meth.image_only:
            records += [_record(meth.name, q, s, blk, blk) for (q, s), blk in image.items()]
    order = {m.name: i for i, m in enumerate(methods)}
    return sorted(records, key=lambda r: (order[r["method"]], r["ratio"], r["seed"]))


def _record(method: str, ratio: float | None, seed: int, block: dict[str, Any],
            cal: dict[str, Any] | None) -> dict[str, Any]:
    return {"method": method, "ratio": float(ratio or 0.0), "seed": int(seed),
            "top1": float(block["top1"]), "top3": float(block["top3"]), "mrr": float(block["mrr"]),
            **{f"cal_{k}": float(cal[k]) if cal is not None else math.nan for k in ("top1", "top3", "mrr")}}


def _std(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def aggregate(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean / std over seeds per (method, ratio), in first-seen method order and ascending ratio.

    Raises:
        ConfigError: when a record lacks a key or a (method, ratio, seed) appears twice.
    """
    groups: dict[tuple[str, float], dict[int, dict[str, Any]]] = {}
    for i, rec in enumerate(records):
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            raise ConfigError(f"records[{i}]: missing key(s) {missing}")
        key = (str(rec["method"]), float(rec["ratio"]))
        seeds = groups.setdefault(key, {})
        if int(rec["seed"]) in seeds:
            raise ConfigError(f"records[{i}]: duplicate run {key[0]!r} ratio {key[1]} seed {rec['seed']}")
        seeds[int(rec["seed"])] = rec
    order = list(dict.fromkeys(m for m, _ in groups))
    rows = []
    for method, ratio in sorted(groups, key=lambda k: (order.index(k[0]), k[1])):
        by_seed = groups[(method, ratio)]
        ids = sorted(by_seed)
        top1 = np.array([float(by_seed[s]["top1"]) for s in ids])
        cal = np.array([float(by_seed[s].get("cal_top1", math.nan)) for s in ids])
        has_cal = not np.isnan(cal).any()  # else None: a run without the calibrated fusion
        rows.append({
            "method": method,
            "ratio": ratio,
            "top1_mean": float(top1.mean()),
            "top1_std": _std(top1),
            "top3_mean": float(np.mean([float(by_seed[s]["top3"]) for s in ids])),
            "mrr_mean": float(np.mean([float(by_seed[s]["mrr"]) for s in ids])),
            "seeds": [float(v) for v in top1],
            "seed_ids": ids,
            "cal_top1_mean": float(cal.mean()) if has_cal else None,
            "cal_top1_std": _std(cal) if has_cal else None,
            "cal_seeds": [float(v) for v in cal] if has_cal else [],
        })
    return rows


def _lookup(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, float], dict[str, Any]]:
    return {(str(r["method"]), float(r["ratio"])): r for r in rows}


def relative_gain(rows: Sequence[dict[str, Any]], method: str, baseline: str,
                  prefix: str = "") -> dict[float, float]:
    """``top1_mean(method) / top1_mean(baseline) - 1`` per ratio both have (NaN if baseline is 0).

    ``prefix="cal_"`` compares the calibrated fusion's ``cal_top1_mean`` instead.

    >>> rows = [{"method": "a", "ratio": 0.1, "top1_mean": 0.2}, {"method": "b", "ratio": 0.1, "top1_mean": 0.25}]
    >>> relative_gain(rows, "b", "a")
    {0.1: 0.25}
    """
    table = _lookup(rows)
    out = {}
    for (m, ratio), row in sorted(table.items(), key=lambda kv: kv[0][1]):
        if m != method or (baseline, ratio) not in table:
            continue
        base, mine = table[(baseline, ratio)].get(f"{prefix}top1_mean"), row.get(f"{prefix}top1_mean")
        if base is None or mine is None or float(base) <= 0:
            out[ratio] = math.nan
        else:
            out[ratio] = float(mine) / float(base) - 1.0
    return out


def _ratio_label(ratio: float) -> str:
    return f"{ratio * 100:g} %"


def _cell(row: dict[str, Any] | None, prefix: str = "") -> str:
    if row is None or row.get(prefix + "top1_mean") is None:
        return "–"
    return f"{100 * row[prefix + 'top1_mean']:.2f} ({100 * row[prefix + 'top1_std']:.2f})"


def _gain_cell(g: float | None) -> str:
    return "–" if g is None or math.isnan(g) else f"{100 * g:+.1f} %"


def table_cells(rows: Sequence[dict[str, Any]], gain: tuple[str, str] | None = None,
                prefix: str = "") -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the Table-1-shaped table (methods × ratios).

    Args:
        rows: aggregated rows (:func:`aggregate`).
        gain: ``(method, baseline)``: append a row with the relative top-1 gain of ``method``
            over ``baseline`` (only when both were run); None for no gain row.
        prefix: ``""`` for the paper's fusion, ``"cal_"`` for the calibrated one.

    Returns:
        ``(header, body)``: header ``["Ratio λ", "5 %", ...]``; one body line per method
        with ``mean (std)`` cells in percent.
    """
    table = _lookup(rows)
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    ratios = sorted({float(r["ratio"]) for r in rows})
    header = ["Ratio λ", *(_ratio_label(q) for q in ratios)]
    body = [[m, *(_cell(table.get((m, q)), prefix) for q in ratios)] for m in methods]
    if gain is not None and set(gain) <= set(methods):
        g = relative_gain(rows, *gain, prefix=prefix)
        body.append([f"{gain[0]} vs {gain[1]}", *(_gain_cell(g.get(q)) for q in ratios)])
    return header, body


def format_table(rows: Sequence[dict[str, Any]], gain: tuple[str, str] | None = None,
                 markdown: bool = False, prefix: str = "") -> str:
    """The table as aligned plain text (terminal) or a Markdown pipe table.

    ``prefix="cal_"`` formats the calibrated fusion's top-1 (see :func:`table_cells`).

    Raises:
        ConfigError: when there are no rows.
    """
    if not rows:
        raise ConfigError("rows: expected at least one result row")
    header, body = table_cells(rows, gain, prefix)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[j]) for r in [header, *body]) for j in range(len(header))]
    fmt = [f"{{:<{widths[0]}}}", *(f"{{:>{w}}}" for w in widths[1:])]
    lines = ["  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)) for r in [header, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n"


def rows_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text: one line per row; ``seeds`` as space-separated per-seed top-1."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_KEYS)
    for r in rows:
        w.writerow([r["method"], f"{r['ratio']:g}", f"{r['top1_mean']:.6f}", f"{r['top1_std']:.6f}",
                    f"{r['top3_mean']:.6f}", f"{r['mrr_mean']:.6f}", len(r["seeds"]),
                    " ".join(f"{v:.6f}" for v in r["seeds"]),
                    *(f"{r[k]:.6f}" if r.get(k) is not None else "" for k in ("cal_top1_mean", "cal_top1_std")),
                    " ".join(f"{v:.6f}" for v in r.get("cal_seeds", []))])
    return buf.getvalue()


def write_results(out_dir: str | Path, rows: Sequence[dict[str, Any]], *, title: str,
                  gain: tuple[str, str] | None = None, meta: dict[str, Any] | None = None,
                  comparisons: Sequence[dict[str, Any]] | None = None,
                  notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` (+ ``comparisons.csv``) atomically.

    Args:
        out_dir: output directory (created).
        rows: aggregated rows.
        title: heading of ``results.md``.
        gain: ``(method, baseline)`` for the relative-gain row and the JSON ``gain`` entry.
        meta: extra JSON-serialisable context (command, settings, machine, timing).
        comparisons: paired per-seed differences (:func:`geocsp.demo.compare.compare`),
            written to ``results.json``, ``results.md`` and ``comparisons.csv``; None for none.
        notes: lines added to ``results.md`` and ``results.json`` (e.g. skipped figures).

    Returns:
        ``{"json", "csv", "md"}`` paths (and ``"comparisons"`` when written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"rows": [dict(r) for r in rows], "meta": dict(meta or {})}
    if gain is not None:
        payload["gain"] = {"method": gain[0], "baseline": gain[1],
                           "relative_top1": {f"{q:g}": g for q, g in relative_gain(rows, *gain).items()},
                           "relative_top1_calibrated": {f"{q:g}": g for q, g in
                                                        relative_gain(rows, *gain, prefix="cal_").items()}}
    if comparisons is not None:
        payload["comparisons"] = [dict(c) for c in comparisons]
    if notes:
        payload["notes"] = list(notes)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    atomic_write_json(paths["json"], payload)
    atomic_write_text(paths["csv"], rows_csv(rows))
    md = f"# {title}\n\nFused top-1 (%), mean (std) over seeds.\n\n{format_table(rows, gain, markdown=True)}"
    if any(r.get("cal_top1_mean") is not None for r in rows):
        md += ("\n## Calibrated fusion\n\nTop-1 (%) of the calibrated fusion (docs/fusion.md), mean (std) "
               f"over seeds.\n\n{format_table(rows, gain, markdown=True, prefix='cal_')}")
    if comparisons:
        paths["comparisons"] = out / "comparisons.csv"
        atomic_write_text(paths["comparisons"], comparisons_csv(comparisons))
        md += f"\n## Paired differences\n\n{format_comparisons(comparisons, markdown=True)}"
    if notes:
        md += "\n## Notes\n\n" + "".join(f"- {n}\n" for n in notes)
    atomic_write_text(paths["md"], md)
    return paths
