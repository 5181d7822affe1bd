"""``geocsp map --html``: one self-contained HTML file with the grids and per-cell top-k inlined."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tests.viz.webruns import CLASSES, REGION, SPECIES

from geocsp.cli.main import cli
from geocsp.sdm.mapping import range_map
from geocsp.sdm.web import RunView, write_html


def inlined(path: Path) -> dict:
    html = path.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)  # nothing fetched
    blob = re.search(r"window\.GEOCSP_DATA = (.*?);</script>", html, re.S)
    assert blob is not None
    return json.loads(blob.group(1).replace("<\\/", "</"))


def test_sdm_html_grids_topk_and_records(sdm_run: Path, tmp_path: Path) -> None:
    out = write_html(sdm_run, tmp_path / "m.html", region=REGION, res_deg=2.0, date="06-15", k=2)
    data = inlined(out)
    assert data["info"]["species"] == SPECIES and data["info"]["date"] == "06-15" and data["info"]["static"]
    assert data["records"]["total"] == 60 and data["embedding"]["w"] == 20
    # each species grid is what `geocsp map` draws (same scores, ocean masked)
    for name in SPECIES:
        g = data["grids"][name]
        codes = np.frombuffer(base64.b64decode(g["data"]), np.uint8).reshape(g["h"], g["w"])
        want = range_map(sdm_run, name, REGION, "06-15", 2.0)[0]
        land = codes != 255
        assert land.any() and (~land).any()
        assert np.abs(codes[land] / 254 - want[land]).max() <= 0.5 / 254 + 1e-9
    # a click's top-k: the classes with the highest scores at the cell centre, for that date
    t = data["topk"]
    idx = np.frombuffer(base64.b64decode(t["idx"]), "<u2").reshape(t["h"], t["w"], 2)
    score = np.frombuffer(base64.b64decode(t["score"]), "<u2").reshape(t["h"], t["w"], 2) / 65535
    view = RunView(sdm_run, region=REGION)
    for row, col in [(2, 3), (7, 15)]:
        lon, lat = t["west"] + (col + 0.5) * t["res"], t["north"] - (row + 0.5) * t["res"]
        s = view.point_scores(lon, lat, "06-15")
        assert list(idx[row, col]) == list(np.argsort(-s)[:2])
        assert np.abs(score[row, col] - np.sort(s)[::-1][:2]).max() < 1e-4


def test_prior_html_via_cli(prior_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.html"
    r = CliRunner().invoke(cli, ["map", str(prior_run), "--species", "Fagus sylvatica", "--species", "Picea abies",
                                 "--region", REGION, "--res", "4", "--html", str(out)])
    assert r.exit_code == 0, r.output
    data = inlined(out)
    assert data["info"]["species"] == ["Fagus sylvatica", "Picea abies"] and data["classes"] == CLASSES
    assert data["records"]["total"] == 0 and data["topk"]["k"] == 5
    r = CliRunner().invoke(cli, ["map", str(prior_run), "--html", str(out)])
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--species", "nope"], "--species 'nope'"),
        (["--date", "06-15"], "fitted without dates"),
        (["--top-k", "0"], "--top-k: expected an integer in [1, 50]"),
        (["--res", "0.001"], "expected at most"),
        ([], None),
    ],
)
def test_html_bad_input_one_line_exit_2(prior_run: Path, tmp_path: Path, args: list[str], message: str | None) -> None:
    out = tmp_path / "bad.html"
    r = CliRunner().invoke(cli, ["map", str(prior_run), "--region", REGION, *args, *(["--html", str(out)] if message else [])])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert (message or "give --out (image / GeoTIFF) and/or --html") in r.output
    assert not out.exists()
