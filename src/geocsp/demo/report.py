"""Result tables of the demo / paper benchmarks: records, aggregation, formatting and writing.

A *record* is one finished run: ``{"method", "ratio", "seed", "top1", "top3", "mrr"}``
(fused metrics, fractions in [0, 1]). A *row* aggregates the records of one
(method, ratio) over seeds:

``{"method", "ratio", "top1_mean", "top1_std", "top3_mean", "mrr_mean", "seeds", "seed_ids"}``

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

from geocsp.errors import ConfigError
from geocsp.experiments.plan import Job, Method
from geocsp.io import atomic_write_json, atomic_write_text

RECORD_KEYS = ("method", "ratio", "seed", "top1", "top3", "mrr")
ROW_KEYS = ("method", "ratio", "top1_mean", "top1_std", "top3_mean", "mrr_mean", "seeds", "seed_ids")
CSV_KEYS = ("method", "ratio", "top1_mean", "top1_std", "top3_mean", "mrr_mean", "n_seeds", "seeds")


def collect_records(jobs: Sequence[Job], results: dict[str, dict[str, Any]],
                    methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Per-(method, ratio, seed) fused metrics of the fine-tuning runs.

    ``image_only`` methods read the image block of the first fine-tuning run at the same
    ratio and seed (the few-shot classifier).

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
        if m.get("probs_key") != expected:
            raise ConfigError(f"{job.run_dir}: evaluated with image probs '{m.get('probs_key')}', expected '{expected}'")
        records.append(_record(job.method, job.ratio, job.seed, m["fused"]))
        image.setdefault((job.ratio, job.seed), m["image"])
    for meth in methods:
        if meth.image_only:
            records += [_record(meth.name, q, s, blk) for (q, s), blk in image.items()]
    order = {m.name: i for i, m in enumerate(methods)}
    return sorted(records, key=lambda r: (order[r["method"]], r["ratio"], r["seed"]))


def _record(method: str, ratio: float | None, seed: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"method": method, "ratio": float(ratio or 0.0), "seed": int(seed),
            "top1": float(block["top1"]), "top3": float(block["top3"]), "mrr": float(block["mrr"])}


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
        rows.append({
            "method": method,
            "ratio": ratio,
            "top1_mean": float(top1.mean()),
            "top1_std": float(top1.std(ddof=1)) if len(top1) > 1 else 0.0,
            "top3_mean": float(np.mean([float(by_seed[s]["top3"]) for s in ids])),
            "mrr_mean": float(np.mean([float(by_seed[s]["mrr"]) for s in ids])),
            "seeds": [float(v) for v in top1],
            "seed_ids": ids,
        })
    return rows


def _lookup(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, float], dict[str, Any]]:
    return {(str(r["method"]), float(r["ratio"])): r for r in rows}


def relative_gain(rows: Sequence[dict[str, Any]], method: str, baseline: str) -> dict[float, float]:
    """``top1_mean(method) / top1_mean(baseline) - 1`` per ratio both have (NaN if baseline is 0).

    >>> rows = [{"method": "a", "ratio": 0.1, "top1_mean": 0.2}, {"method": "b", "ratio": 0.1, "top1_mean": 0.25}]
    >>> relative_gain(rows, "b", "a")
    {0.1: 0.25}
    """
    table = _lookup(rows)
    out = {}
    for (m, ratio), row in sorted(table.items(), key=lambda kv: kv[0][1]):
        if m != method or (baseline, ratio) not in table:
            continue
        base = float(table[(baseline, ratio)]["top1_mean"])
        out[ratio] = float(row["top1_mean"]) / base - 1.0 if base > 0 else math.nan
    return out


def _ratio_label(ratio: float) -> str:
    return f"{ratio * 100:g} %"


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    return f"{100 * row['top1_mean']:.2f} ({100 * row['top1_std']:.2f})"


def _gain_cell(g: float | None) -> str:
    return "–" if g is None or math.isnan(g) else f"{100 * g:+.1f} %"


def table_cells(rows: Sequence[dict[str, Any]], gain: tuple[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the Table-1-shaped table (methods × ratios).

    Args:
        rows: aggregated rows (:func:`aggregate`).
        gain: ``(method, baseline)``: append a row with the relative top-1 gain of ``method``
            over ``baseline``; None for no gain row.

    Returns:
        ``(header, body)``: header ``["Ratio λ", "5 %", ...]``; one body line per method
        with ``mean (std)`` cells in percent.
    """
    table = _lookup(rows)
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    ratios = sorted({float(r["ratio"]) for r in rows})
    header = ["Ratio λ", *(_ratio_label(q) for q in ratios)]
    body = [[m, *(_cell(table.get((m, q))) for q in ratios)] for m in methods]
    if gain is not None:
        g = relative_gain(rows, *gain)
        body.append([f"{gain[0]} vs {gain[1]}", *(_gain_cell(g.get(q)) for q in ratios)])
    return header, body


def format_table(rows: Sequence[dict[str, Any]], gain: tuple[str, str] | None = None,
                 markdown: bool = False) -> str:
    """The table as aligned plain text (terminal) or a Markdown pipe table.

    Raises:
        ConfigError: when there are no rows.
    """
    if not rows:
        raise ConfigError("rows: expected at least one result row")
    header, body = table_cells(rows, gain)
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
                    " ".join(f"{v:.6f}" for v in r["seeds"])])
    return buf.getvalue()


def write_results(out_dir: str | Path, rows: Sequence[dict[str, Any]], *, title: str,
                  gain: tuple[str, str] | None = None, meta: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` atomically.

    Args:
        out_dir: output directory (created).
        rows: aggregated rows.
        title: heading of ``results.md``.
        gain: ``(method, baseline)`` for the relative-gain row and the JSON ``gain`` entry.
        meta: extra JSON-serialisable context (command, settings, machine, timing).

    Returns:
        ``{"json", "csv", "md"}`` paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"rows": [dict(r) for r in rows], "meta": dict(meta or {})}
    if gain is not None:
        payload["gain"] = {"method": gain[0], "baseline": gain[1],
                           "relative_top1": {f"{q:g}": g for q, g in relative_gain(rows, *gain).items()}}
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    atomic_write_json(paths["json"], payload)
    atomic_write_text(paths["csv"], rows_csv(rows))
    md = f"# {title}\n\nFused top-1 (%), mean (std) over seeds.\n\n{format_table(rows, gain, markdown=True)}"
    atomic_write_text(paths["md"], md)
    return paths
