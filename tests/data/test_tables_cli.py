"""``--lon-col/--lat-col/--crs`` and every table format on the commands that read points.

``embed``, ``predict`` (on a table) and ``data import-table``: the flags exist, name columns,
reproject, and a bad value is one line with exit 2 and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner, Result

from geocsp.cli.main import cli
from geocsp.data import load_dataset
from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.prior import GeoPrior
from geocsp.training import embed, predict

LONLAT = np.array([[144.9631, -37.8136], [145.5, -36.9], [146.2, -38.1]])


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved 3-class prior on a small ``wrap`` encoder (random weights: enough for I/O)."""
    torch.manual_seed(0)
    encoder = LocationEncoder(LocationEncoderConfig(encoder="wrap", dim=16))
    prior = GeoPrior(encoder, torch.randn(3, 16), ["a", "b", "c"])
    return prior.save_pretrained(tmp_path_factory.mktemp("prior") / "prior")


@pytest.fixture(scope="module")
def metres() -> np.ndarray:
    """LONLAT in EPSG:28355 (GDA94 / MGA zone 55) metres, by pyproj."""
    pyproj = pytest.importorskip("pyproj")
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:28355", always_xy=True).transform(LONLAT[:, 0], LONLAT[:, 1])
    return np.stack([x, y], axis=1)


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error(res: Result, pattern: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("geocsp: error: "), res.output
    assert pattern in lines[0], lines[0]


def test_embed_names_columns_and_reprojects(prior_dir: Path, metres: np.ndarray, tmp_path: Path) -> None:
    want = embed(prior_dir, LONLAT)
    pd.DataFrame({"site": ["s1", "s2", "s3"], "x": metres[:, 0], "y": metres[:, 1]}).to_csv(tmp_path / "m.csv", index=False)
    res = run("embed", prior_dir, tmp_path / "m.csv", "--lon-col", "x", "--lat-col", "y", "--crs", "EPSG:28355",
              "--out", tmp_path / "e.npy", "--device", "cpu")
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), want, rtol=1e-5, atol=1e-6)
    # the error for a table without lon/lat names a flag embed has
    res = run("embed", prior_dir, tmp_path / "m.csv", "--out", tmp_path / "f.npy")
    one_error(res, "column 'lon' (--lon-col) not found; available columns: site, x, y")
    assert not (tmp_path / "f.npy").exists()
    res = run("embed", prior_dir, tmp_path / "m.csv", "--lon-col", "x", "--lat-col", "y", "--crs", "EPSG:0",
              "--out", tmp_path / "f.npy")
    one_error(res, "unknown coordinate reference system 'EPSG:0'")
    assert not (tmp_path / "f.npy").exists()


def test_embed_geojson_points(prior_dir: Path, tmp_path: Path) -> None:
    feats = [{"type": "Feature", "properties": {"k": i}, "geometry": {"type": "Point", "coordinates": list(p)}}
             for i, p in enumerate(LONLAT)]
    (tmp_path / "p.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    res = run("embed", prior_dir, tmp_path / "p.geojson", "--out", tmp_path / "e.csv.gz", "--device", "cpu")
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "e.csv.gz")
    np.testing.assert_allclose(table[["lon", "lat"]].to_numpy(), LONLAT)
    np.testing.assert_allclose(table.filter(like="e").to_numpy(), embed(prior_dir, LONLAT), rtol=1e-5, atol=1e-6)
    feats[1]["geometry"] = {"type": "MultiPoint", "coordinates": [[0, 0]]}
    (tmp_path / "bad.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    one_error(run("embed", prior_dir, tmp_path / "bad.geojson", "--out", tmp_path / "x.npy"),
              "bad.geojson: feature 1: geometry type 'MultiPoint'; expected Point features")


def test_predict_on_a_projected_table(prior_dir: Path, metres: np.ndarray, tmp_path: Path) -> None:
    want = predict(prior_dir, _degrees_csv(tmp_path), top_k=2, device="cpu")
    pd.DataFrame({"site": ["s1", "s2", "s3"], "e": metres[:, 0], "n": metres[:, 1]}).to_parquet(tmp_path / "m.parquet")
    res = run("predict", prior_dir, tmp_path / "m.parquet", "--lon-col", "e", "--lat-col", "n", "--crs", "EPSG:28355",
              "--top-k", "2", "--out", tmp_path / "p.geojson", "--device", "cpu")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "p.geojson").read_text())
    got = pd.DataFrame([f["properties"] for f in doc["features"]])
    assert got["site"].tolist() == ["s1", "s2", "s3"]
    assert got["class_1"].tolist() == want["class_1"].tolist()
    np.testing.assert_allclose(got["score_1"], want["score_1"], rtol=1e-5)
    np.testing.assert_allclose([f["geometry"]["coordinates"] for f in doc["features"]], LONLAT, atol=1e-9)


def test_predict_flags_refused_on_a_dataset(prior_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text("{}")
    one_error(run("predict", prior_dir, tmp_path / "ds", "--lon-col", "x", "--out", tmp_path / "p.csv"),
              "--lon-col/--lat-col/--crs apply to a table INPUT, not to a dataset directory")
    assert not (tmp_path / "p.csv").exists()


def test_import_table_geojson_and_crs(metres: np.ndarray, tmp_path: Path) -> None:
    feats = [{"type": "Feature", "properties": {"species": s},
              "geometry": {"type": "Point", "coordinates": list(p)}} for s, p in zip("aba", metres, strict=True)]
    legacy = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::28355"}}
    (tmp_path / "m.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    res = run("data", "import-table", tmp_path / "m.geojson", "--label-col", "species", "--crs", "EPSG:28355",
              "--out", tmp_path / "ds")
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "ds")
    np.testing.assert_allclose(ds.split("train").lonlat, LONLAT, atol=1e-9)
    assert ds.classes == ["a", "b"]
    # a legacy GeoJSON ``crs`` member gives the same without --crs
    (tmp_path / "l.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats, "crs": legacy}))
    assert run("data", "import-table", tmp_path / "l.geojson", "--out", tmp_path / "ds2").exit_code == 0
    np.testing.assert_allclose(load_dataset(tmp_path / "ds2").split("train").lonlat, LONLAT, atol=1e-9)
    # metres without --crs are not degrees: one line, nothing written
    one_error(run("data", "import-table", tmp_path / "m.geojson", "--out", tmp_path / "ds3"), "m.geojson")
    assert not (tmp_path / "ds3").exists()


def _degrees_csv(tmp_path: Path) -> Path:
    p = tmp_path / "deg.csv"
    pd.DataFrame({"lon": LONLAT[:, 0], "lat": LONLAT[:, 1]}).to_csv(p, index=False)
    return p


@pytest.mark.parametrize(("name", "sep"), [("semi.csv", ";"), ("tab.tsv", "\t"), ("tab.txt", "\t")])
def test_semicolon_and_tab_tables_on_every_points_command(prior_dir: Path, tmp_path: Path, name: str,
                                                          sep: str) -> None:
    """docs/dataset.md "Tables of points": `,` `;` or tab, found from the header, for import-table,
    embed and predict alike (GeoLifeCLEF's tables are `;`-separated)."""
    p = tmp_path / name
    pd.DataFrame({"species": list("aba"), "lon": LONLAT[:, 0], "lat": LONLAT[:, 1]}).to_csv(p, sep=sep, index=False)
    assert run("data", "import-table", p, "--label-col", "species", "--out", tmp_path / "ds").exit_code == 0
    np.testing.assert_allclose(load_dataset(tmp_path / "ds").split("train").lonlat, LONLAT, atol=1e-12)
    res = run("embed", prior_dir, p, "--out", tmp_path / "e.npy", "--device", "cpu")
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), embed(prior_dir, LONLAT), rtol=1e-5, atol=1e-6)
    res = run("predict", prior_dir, p, "--out", tmp_path / "p.csv", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3


def test_a_truncated_or_non_utf8_csv_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "cut.csv").write_bytes(b"species,lon,lat,n\na,144.9,-37.8,1\nb,145.5,-36")  # copy cut mid-row
    one_error(run("data", "import-table", tmp_path / "cut.csv", "--label-col", "species", "--out", tmp_path / "a"),
              "cut.csv: line 3 has 3 of 4 fields and no final newline; the file looks truncated")
    (tmp_path / "l1.csv").write_bytes("species,lon,lat\nété,144.9,-37.8\n".encode("latin-1"))
    one_error(run("data", "import-table", tmp_path / "l1.csv", "--label-col", "species", "--out", tmp_path / "b"),
              "l1.csv: not UTF-8 text; expected a UTF-8 csv file (re-encode it")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # complete rows without a final newline are fine
    (tmp_path / "ok.csv").write_bytes(b"species,lon,lat\na,144.9,-37.8\nb,145.5,-36.9")
    assert run("data", "import-table", tmp_path / "ok.csv", "--label-col", "species", "--out", tmp_path / "c").exit_code == 0
