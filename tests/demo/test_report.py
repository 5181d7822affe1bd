"""Records, tables, aggregation and relative-gain arithmetic on fake results (no training)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from geocsp.demo.report import (
    aggregate,
    collect_records,
    format_table,
    relative_gain,
    rows_csv,
    table_cells,
    write_results,
)
from geocsp.errors import ConfigError
from geocsp.experiments.plan import Job, Method


def _records() -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for method in ("Img. Only", "Sup. Only (grid)", "CSP-MC-BLD"):
        for ratio in (1.0, 0.05):  # unsorted on purpose
            for seed in (2, 0, 1):
                t1 = float(rng.uniform(0.2, 0.8))
                out.append({"method": method, "ratio": ratio, "seed": seed, "top1": t1,
                            "top3": t1 + 0.1, "mrr": t1 + 0.05})
    return out


def test_aggregate_matches_float64_numpy() -> None:
    recs = _records()
    rows = aggregate(recs)
    assert [(r["method"], r["ratio"]) for r in rows] == [
        ("Img. Only", 0.05), ("Img. Only", 1.0), ("Sup. Only (grid)", 0.05), ("Sup. Only (grid)", 1.0),
        ("CSP-MC-BLD", 0.05), ("CSP-MC-BLD", 1.0)]
    for row in rows:
        mine = sorted((r for r in recs if r["method"] == row["method"] and r["ratio"] == row["ratio"]),
                      key=lambda r: r["seed"])
        t1 = np.array([r["top1"] for r in mine], dtype=np.float64)
        assert row["seeds"] == pytest.approx(t1.tolist(), abs=0)
        assert row["seed_ids"] == [0, 1, 2]
        assert row["top1_mean"] == pytest.approx(t1.sum() / 3, rel=1e-12)
        assert row["top1_std"] == pytest.approx(math.sqrt(((t1 - t1.mean()) ** 2).sum() / 2), rel=1e-12)
        assert row["top3_mean"] == pytest.approx(np.mean([r["top3"] for r in mine]), rel=1e-12)
        assert row["mrr_mean"] == pytest.approx(np.mean([r["mrr"] for r in mine]), rel=1e-12)


def test_aggregate_single_seed_has_zero_std() -> None:
    (row,) = aggregate([{"method": "a", "ratio": 0.1, "seed": 0, "top1": 0.5, "top3": 0.6, "mrr": 0.55}])
    assert row["top1_std"] == 0.0 and row["seeds"] == [0.5]


def test_aggregate_errors() -> None:
    rec = {"method": "a", "ratio": 0.1, "seed": 0, "top1": 0.5, "top3": 0.6, "mrr": 0.55}
    with pytest.raises(ConfigError, match=r"duplicate run 'a' ratio 0.1 seed 0"):
        aggregate([rec, dict(rec)])
    with pytest.raises(ConfigError, match=r"records\[0\]: missing key\(s\) \['mrr'\]"):
        aggregate([{k: v for k, v in rec.items() if k != "mrr"}])


def test_relative_gain_arithmetic() -> None:
    rows = [{"method": "base", "ratio": 0.05, "top1_mean": 0.0816},
            {"method": "csp", "ratio": 0.05, "top1_mean": 0.0901},
            {"method": "base", "ratio": 0.1, "top1_mean": 0.1465},
            {"method": "csp", "ratio": 0.1, "top1_mean": 0.1968},
            {"method": "csp", "ratio": 0.2, "top1_mean": 0.3},     # no baseline: left out
            {"method": "base", "ratio": 1.0, "top1_mean": 0.0},    # zero baseline: NaN
            {"method": "csp", "ratio": 1.0, "top1_mean": 0.5}]
    g = relative_gain(rows, "csp", "base")
    assert list(g) == [0.05, 0.1, 1.0]
    assert g[0.05] == pytest.approx(0.0901 / 0.0816 - 1) and round(100 * g[0.05], 1) == 10.4  # the paper's +10.4 %
    assert round(100 * g[0.1], 1) == 34.3
    assert math.isnan(g[1.0])


def test_table_cells_and_formats() -> None:
    rows = aggregate(_records())
    header, body = table_cells(rows, gain=("CSP-MC-BLD", "Sup. Only (grid)"))
    assert header == ["Ratio λ", "5 %", "100 %"]
    assert [b[0] for b in body] == ["Img. Only", "Sup. Only (grid)", "CSP-MC-BLD", "CSP-MC-BLD vs Sup. Only (grid)"]
    r = rows[0]
    assert body[0][1] == f"{100 * r['top1_mean']:.2f} ({100 * r['top1_std']:.2f})"
    g = relative_gain(rows, "CSP-MC-BLD", "Sup. Only (grid)")[0.05]
    assert body[-1][1] == f"{100 * g:+.1f} %"
    text = format_table(rows, gain=("CSP-MC-BLD", "Sup. Only (grid)"))
    lines = text.splitlines()
    assert len(lines) == 2 + len(body) and set(lines[1]) == {"-"}
    assert len({len(ln) for ln in (lines[0], *lines[2:])}) == 1  # aligned columns
    md = format_table(rows, markdown=True).splitlines()
    assert md[0] == "| Ratio λ | 5 % | 100 % |" and md[1] == "|---|---|---|" and len(md) == 2 + 3
    # a missing cell prints a dash
    partial = [x for x in rows if not (x["method"] == "Img. Only" and x["ratio"] == 1.0)]
    assert table_cells(partial)[1][0][2] == "–"
    # no gain row when either method of the gain was not run (bench paper --methods)
    without = [x for x in rows if x["method"] != "CSP-MC-BLD"]
    assert [b[0] for b in table_cells(without, gain=("CSP-MC-BLD", "Sup. Only (grid)"))[1]] == [
        "Img. Only", "Sup. Only (grid)"]
    with pytest.raises(ConfigError, match="at least one result row"):
        format_table([])


def test_write_results_files(tmp_path) -> None:
    rows = aggregate(_records())
    paths = write_results(tmp_path / "o", rows, title="T", gain=("CSP-MC-BLD", "Sup. Only (grid)"), meta={"x": 1})
    data = json.loads(paths["json"].read_text())
    assert data["rows"] == rows and data["meta"] == {"x": 1}
    assert set(data["gain"]["relative_top1"]) == {"0.05", "1"}
    with paths["csv"].open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows) and table[0]["method"] == "Img. Only"
    assert [float(v) for v in table[0]["seeds"].split()] == pytest.approx(rows[0]["seeds"], abs=1e-6)
    assert rows_csv(rows).splitlines()[0].startswith("method,ratio,top1_mean")
    assert paths["md"].read_text().startswith("# T\n")
    assert not list((tmp_path / "o").glob("*.tmp*"))  # nothing left from the atomic writes


def _metrics(top1: float, key: str) -> dict:
    blk = {"top1": top1, "top3": top1 + 0.1, "mrr": top1 + 0.05}
    return {"fused": blk, "image": {"top1": 0.3, "top3": 0.4, "mrr": 0.35}, "probs_key": key}


def test_collect_records_uses_the_ratio_classifier() -> None:
    methods = (Method("Img. Only", image_only=True), Method("Sup"))
    jobs = [Job("finetune", "Sup", s, q, {}, f"r{q}{s}") for q in (0.05, 1.0) for s in (0, 1)]
    results = {j.run_dir: _metrics(0.5 + j.ratio, f"ratio{j.ratio:.3f}") for j in jobs}
    recs = collect_records(jobs, results, methods)
    assert [(r["method"], r["ratio"], r["seed"]) for r in recs] == [
        ("Img. Only", 0.05, 0), ("Img. Only", 0.05, 1), ("Img. Only", 1.0, 0), ("Img. Only", 1.0, 1),
        ("Sup", 0.05, 0), ("Sup", 0.05, 1), ("Sup", 1.0, 0), ("Sup", 1.0, 1)]
    assert recs[0]["top1"] == 0.3 and recs[-1]["top1"] == 1.5
    results[jobs[0].run_dir]["probs_key"] = "default"  # evaluated with the 100 % classifier
    with pytest.raises(ConfigError, match=r"image probs 'default', expected 'ratio0.050'"):
        collect_records(jobs, results, methods)
