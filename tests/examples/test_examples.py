"""The scripts in examples/ run as documented (small data, temporary directories) and do what they say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: object) -> str:
    res = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


def test_every_example_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    assert len(scripts) == 3
    for name in scripts:
        assert f"(examples/{name})" in readme, name


def test_photos_to_prior(tmp_path: Path) -> None:
    out = run_example("photos_to_prior.py", "--out", tmp_path)
    assert "64/64 images" in out  # every generated photo was read, with its EXIF GPS
    top = pd.read_csv(tmp_path / "places_top2.csv").set_index("place")["class_1"].to_dict()
    assert top == {"Alps": "alpine_swift", "Andalusia": "iberian_lynx", "Gulf of Riga": "baltic_seal",
                   "Pannonia": "hungarian_vole"}


def test_records_to_sdm(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    out = run_example("records_to_sdm.py", "--out", tmp_path)
    centres = {"alpine_newt": (10.0, 47.0), "baltic_vole": (25.5, 58.7)}
    for name in centres:
        with rasterio.open(tmp_path / f"{name}.tif") as src:
            assert src.crs.to_epsg() == 4326 and src.count == 1
            value = {k: float(next(src.sample([c]))[0]) for k, c in centres.items()}
        own, others = value.pop(name), list(value.values())
        assert all(own > 5 * o >= 0 for o in others), (name, own, others)  # each range peaks at its own centre
        assert re.search(rf"{name}\.tif \(EPSG:4326", out)
    assert (tmp_path / "map.html").read_text(errors="replace").lstrip().lower().startswith("<!doctype html")


@pytest.mark.parametrize("encoder", ["auto", "sphereC+"])
def test_coords_to_probe(tmp_path: Path, encoder: str) -> None:
    run_example("coords_to_probe.py", "--out", tmp_path, "--encoder", encoder, "--points", 2000)
    res = json.loads((tmp_path / "probe.json").read_text())
    if encoder == "sphereC+":
        assert res["encoder"] == "sphereC+"
    # the embeddings make land/ocean linearly readable; raw (lon, lat) barely beat the majority class
    assert res["embedding_probe_accuracy"] > res["majority_accuracy"] + 0.05
    assert res["embedding_probe_accuracy"] > res["lonlat_probe_accuracy"] + 0.05
