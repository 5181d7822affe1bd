"""Paired comparisons against Img. Only and every Sup. Only row, for both fusions (fake records)."""

from __future__ import annotations

import csv
import io
import math

import pytest

from geocsp.demo.compare import baselines, compare, comparisons_csv, format_comparisons
from geocsp.demo.report import aggregate, write_results

TOP1 = {  # method -> per-seed (paper top-1, calibrated top-1)
    "Img. Only": [(0.50, 0.50), (0.52, 0.52), (0.54, 0.54)],
    "Sup. Only (grid)": [(0.48, 0.53), (0.51, 0.54), (0.51, 0.56)],
    "CSP-MC-BLD": [(0.49, 0.55), (0.53, 0.56), (0.54, 0.58)],
}


def _records(seeds: int = 3, ratio: float = 0.1) -> list[dict]:
    return [{"method": m, "ratio": ratio, "seed": s, "top1": v[s][0], "top3": 0.9, "mrr": 0.7,
             "cal_top1": v[s][1], "cal_top3": 0.9, "cal_mrr": 0.7}
            for m, v in TOP1.items() for s in range(seeds)]


def _find(comps: list[dict], fusion: str, method: str, base: str) -> dict:
    return next(c for c in comps if (c["fusion"], c["method"], c["baseline"]) == (fusion, method, base))


def test_pairs_and_paired_differences() -> None:
    comps = compare(_records())
    pairs = {(c["fusion"], c["method"], c["baseline"]) for c in comps}
    assert pairs == {(f, m, b) for f in ("paper", "calibrated") for m, b in [
        ("Sup. Only (grid)", "Img. Only"), ("CSP-MC-BLD", "Img. Only"), ("CSP-MC-BLD", "Sup. Only (grid)")]}
    c = _find(comps, "paper", "CSP-MC-BLD", "Sup. Only (grid)")
    assert c["diffs"] == pytest.approx([0.01, 0.02, 0.03]) and c["mean_diff"] == pytest.approx(0.02)
    assert c["sd"] == pytest.approx(0.01) and c["half_width"] == pytest.approx(0.024841, abs=1e-6)
    assert c["ci95_low"] == pytest.approx(0.02 - 0.024841, abs=1e-6) and c["n_seeds"] == 3
    assert c["relative_gain"] == pytest.approx((0.52 / 0.50) - 1.0)
    cal = _find(comps, "calibrated", "CSP-MC-BLD", "Img. Only")
    assert cal["diffs"] == pytest.approx([0.05, 0.04, 0.04])


def test_one_seed_and_missing_calibrated() -> None:
    recs = _records(seeds=1)
    for r in recs:
        if r["method"] == "CSP-MC-BLD":
            r["cal_top1"] = math.nan  # a run without the calibrated fusion: not compared there
    comps = compare(recs)
    assert all(c["half_width"] is None and c["ci95_low"] is None for c in comps)
    assert not [c for c in comps if c["fusion"] == "calibrated" and c["method"] == "CSP-MC-BLD"]
    text = format_comparisons(comps)
    assert "one seed: no confidence interval" in text and "±" not in text
    assert "CSP-MC-BLD − Sup. Only (grid)" in text and "+1.00" in text
    rows = list(csv.DictReader(io.StringIO(comparisons_csv(comps))))
    assert rows[0]["half_width"] == "" and rows[0]["n_seeds"] == "1"


def test_text_markdown_and_written_files(tmp_path) -> None:
    recs = _records()
    comps = compare(recs)
    assert "+2.00 ± 2.48" in format_comparisons(comps)
    md = format_comparisons(comps, markdown=True)
    assert "| paper fusion: top-1 gain (pp) | 10 % |" in md and "| calibrated fusion" in md
    rows = aggregate(recs)
    assert rows[0]["cal_top1_mean"] == pytest.approx(0.52)
    paths = write_results(tmp_path, rows, title="T", gain=("CSP-MC-BLD", "Sup. Only (grid)"),
                          comparisons=comps, notes=["range maps skipped: not a GeoWorld"])
    text = paths["md"].read_text()
    assert "## Calibrated fusion" in text and "## Paired differences" in text and "range maps skipped" in text
    assert paths["comparisons"].read_text().startswith("fusion,method,baseline,ratio")
    assert baselines(["MSE", "Sup. Only (wrap)", "Img. Only"]) == ["Sup. Only (wrap)", "Img. Only"]
