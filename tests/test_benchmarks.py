"""The benchmark command keeps working (never a timing assertion: benchmarks are not tests)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from perf import measure  # noqa: E402


def test_interleaved_runs_each_function_in_order_every_round() -> None:
    calls: list[str] = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    t = measure.interleaved(fns, torch.device("cpu"), warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up round + three timed rounds, a before b
    assert set(t) == {"a", "b"} and all(len(v) == 3 and min(v) >= 0 for v in t.values())


def test_matmul_call_counts_the_flops_of_its_product() -> None:
    run, work = measure.matmul_call(8, 4, 3, torch.device("cpu"))
    run()
    assert work == 2 * 8 * 4 * 3


@pytest.mark.slow
def test_run_quick_writes_a_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--items", "1,2,3,5",
           "--repeats", "1", "--warmup", "1", "--threads", "1", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "roofline" in res.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["item"] for r in rows] == ["1 pretrain", "2 finetune", "3 evaluate"]
    for r in rows:
        assert r["step_s"] > 0 and math.isfinite(r["roofline"]) and r["roofline"] > 0
        assert r["roofline_min"] <= r["roofline"] <= r["roofline_max"]


def test_demo_step_benchmarks_print_their_tables(tmp_path: Path) -> None:
    for script, extra in (("dropout_step.py", []), ("stacked_step.py", ["--replicas", "2"])):
        out = tmp_path / f"{script}.json"
        cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--rounds", "1", "--steps", "2", "--json", str(out), *extra]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "| variant |" in res.stdout and json.loads(out.read_text())["rounds"] == 1
