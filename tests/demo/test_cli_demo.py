"""``geocsp demo --quick`` end to end through the CLI: the files exist and are well-formed.

The numbers are not checked here (see docs/results.md); the run takes ~30-60 s on 2 cores.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.demo.tables import TABLES

ROW_TYPES = {"method": str, "ratio": float, "top1_mean": float, "top1_std": float,
             "top3_mean": float, "mrr_mean": float, "seeds": list}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    res = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_quick_demo_writes_wellformed_results(quick_run: tuple[Path, str]) -> None:
    out, output = quick_run
    data = json.loads((out / "results.json").read_text())
    methods = [m.name for m in TABLES[1]]
    ratios = [0.05, 0.1, 0.2, 1.0]
    rows = data["rows"]
    assert [(r["method"], r["ratio"]) for r in rows] == [(m, q) for m in methods for q in ratios]
    for r in rows:
        for key, typ in ROW_TYPES.items():
            assert isinstance(r[key], typ), (key, r)
        assert len(r["seeds"]) == 2 and all(0.0 <= v <= 1.0 for v in r["seeds"])
        assert 0.0 <= r["top1_mean"] <= r["top3_mean"] <= 1.0
    # Img. Only comes from each ratio's few-shot classifier: it rises with the ratio
    img = [r["top1_mean"] for r in rows if r["method"] == "Img. Only"]
    assert img == sorted(img) and img[0] < img[-1]
    assert data["meta"]["settings"]["world"] == "small-calib"
    assert all(rec.get("seed") in (0, 1) for rec in data["meta"]["records"])
    with (out / "results.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    md = (out / "results.md").read_text()
    assert "| Ratio λ | 5 % | 10 % | 20 % | 100 % |" in md and "CSP-MC-BLD vs Sup. Only (grid)" in md
    for name in ("table.png", "gain.png", "range_maps.png", "embedding_pca.png"):
        blob = (out / name).read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 10_000, name
    # the printed table has the paper's shape: one line per method plus the gain row
    assert all(m in output for m in methods) and "CSP-MC-BLD vs Sup. Only (grid)" in output


def test_rerun_reuses_finished_runs(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    before = json.loads((out / "results.json").read_text())["rows"]
    res = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(out), "--jobs", "1", "--no-figures"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "results.json").read_text())["rows"] == before


def test_bad_ratios_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["demo", "--quick", "--ratios", "0.1,abc", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "comma-separated numbers" in res.output
    res = CliRunner().invoke(cli, ["demo", "--quick", "--ratios", "0.1,2", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "ratios: expected distinct label ratios" in res.output
    res = CliRunner().invoke(cli, ["bench", "paper", "--table", "4"])
    assert res.exit_code == 2
