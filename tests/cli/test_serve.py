"""``geocsp serve``: the map server on a free port in a thread; endpoints, bad parameters, traversal."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from tests.viz.webruns import (
    CLASSES,
    REGION,
    SPECIES,
    make_prior_run,
    make_sdm_run,
    make_table_sdm_run,
)

from geocsp.checkpoints import load_prior
from geocsp.cli.main import cli
from geocsp.encoders.time import encode_day_of_year
from geocsp.sdm.model import FittedSDM
from geocsp.sdm.predict import predict_table
from geocsp.sdm.web import RunView
from geocsp.viz.server import MapServer


def _start(view: RunView) -> Iterator[MapServer]:
    server = MapServer(view, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def sdm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sdm_run(tmp_path_factory.mktemp("serve") / "sdm-run")


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prior_run(tmp_path_factory.mktemp("serve") / "prior-run")


@pytest.fixture(scope="module")
def sdm_server(sdm_run: Path) -> Iterator[MapServer]:
    yield from _start(RunView(sdm_run, region=REGION, res_deg=2.0))


@pytest.fixture(scope="module")
def prior_server(prior_run: Path) -> Iterator[MapServer]:
    yield from _start(RunView(prior_run, region=REGION, res_deg=2.0))


def get(server: MapServer, path: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, content type, body) of a raw request (the path is sent exactly as given)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read().decode("utf-8")
    finally:
        conn.close()


def get_json(server: MapServer, path: str) -> dict:
    status, ctype, body = get(server, path)
    assert status == 200, body
    assert ctype == "application/json"
    return json.loads(body)


def test_binds_localhost_by_default(sdm_server: MapServer) -> None:
    assert sdm_server.server_address[0] == "127.0.0.1"
    assert sdm_server.url == f"http://127.0.0.1:{sdm_server.port}/"


def test_page_and_assets(sdm_server: MapServer) -> None:
    status, ctype, body = get(sdm_server, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert 'src="static/leaflet.js"' in body and 'src="static/app.js"' in body
    assert "http://" not in body and "https://" not in body  # nothing from the network
    status, ctype, js = get(sdm_server, "/static/leaflet.js")
    assert status == 200 and ctype.startswith("text/javascript") and "Leaflet" in js[:400]
    assert get(sdm_server, "/static/app.css")[0] == 200


def test_info_and_grid_match_the_map_scores(sdm_server: MapServer, sdm_run: Path) -> None:
    info = get_json(sdm_server, "/api/info")
    assert info["species"] == SPECIES and info["kind"] == "sdm" and info["has_time"] is True
    assert info["bbox"] == [-20.0, -10.0, 20.0, 10.0] and info["res"] == 2.0 and info["records"] == 60
    name = SPECIES[1]
    g = get_json(sdm_server, f"/api/grid?species={name.replace(' ', '+')}&res=2")
    assert (g["w"], g["h"]) == (20, 10) and (g["west"], g["north"]) == (-20.0, 10.0)
    codes = np.frombuffer(__import__("base64").b64decode(g["data"]), np.uint8).reshape(10, 20)
    # the same scores as `sdm predict` at the cell centres; ocean cells carry no data
    lon2, lat2 = np.meshgrid(np.arange(-19, 20, 2.0), np.arange(9, -10, -2.0))
    sites = pd.DataFrame({"lon": lon2.ravel(), "lat": lat2.ravel()})
    want = predict_table(FittedSDM.load(sdm_run), sites, "grid", wide=True)[name].to_numpy().reshape(10, 20)
    land = codes != 255
    assert 0.2 < land.mean() < 0.9  # land and sea in this region
    assert np.abs(codes[land] / 254 - want[land]).max() <= 0.5 / 254 + 1e-9
    rich = get_json(sdm_server, "/api/grid?layer=richness&res=2")
    assert rich["h"] == 10 and rich["vmax"] <= len(SPECIES)
    emb = get_json(sdm_server, "/api/grid?layer=embedding&res=4&date=06-15")
    assert len(__import__("base64").b64decode(emb["rgba"])) == emb["w"] * emb["h"] * 4


def test_point_top_k_and_date(sdm_server: MapServer, sdm_run: Path) -> None:
    p = get_json(sdm_server, "/api/point?lon=0.5&lat=5.5&k=2&species=Quercus+%3Crobur%3E")
    fitted = FittedSDM.load(sdm_run)
    want = predict_table(fitted, pd.DataFrame({"lon": [0.5], "lat": [5.5]}), "p", wide=True)[SPECIES].to_numpy()[0]
    order = np.argsort(-want)[:2]
    assert [t[0] for t in p["top"]] == [SPECIES[i] for i in order]
    assert np.allclose([t[1] for t in p["top"]], want[order], atol=1e-6)
    assert p["species"][0] == "Quercus <robur>"
    dated = get_json(sdm_server, "/api/point?lon=0.5&lat=5.5&k=3&date=01-15")
    summer = get_json(sdm_server, "/api/point?lon=0.5&lat=5.5&k=3&date=07-15")
    assert dated["date"] == "01-15" and dated["top"] != summer["top"]  # the time input is used


def test_prior_run(prior_server: MapServer, prior_run: Path) -> None:
    info = get_json(prior_server, "/api/info")
    assert info["kind"] == "geoprior" and info["species"] == CLASSES and info["has_time"] is False
    p = get_json(prior_server, "/api/point?lon=-3.7&lat=4.4&k=5")
    probs = load_prior(prior_run).probs(np.array([[-3.7, 4.4]])).detach().numpy()[0]
    assert [t[0] for t in p["top"]] == [CLASSES[i] for i in np.argsort(-probs)]
    assert np.allclose([t[1] for t in p["top"]], np.sort(probs)[::-1], atol=1e-6)
    g = get_json(prior_server, "/api/grid?species=Fagus+sylvatica")
    assert g["vmin"] == 0.0 and g["vmax"] == 1.0
    assert get_json(prior_server, "/api/records")["total"] == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("/api/point?lon=abc&lat=1", "lon: expected a number in [-180, 180], got 'abc'"),
        ("/api/point?lon=200&lat=1", "lon: expected a number in [-180, 180]"),
        ("/api/point?lon=1&lat=nan", "lat: expected a number in [-90, 90]"),
        ("/api/point?lat=1", "lon: missing"),
        ("/api/point?lon=1&lat=1&k=0", "k: expected an integer in [1, 50]"),
        ("/api/point?lon=1&lat=1&k=2.5", "k: expected an integer"),
        ("/api/point?lon=1&lat=1&lon=2", "parameter 'lon' given 2 times"),
        ("/api/point?lon=1&lat=1&evil=1", "unknown parameter 'evil'"),
        ("/api/point?lon=1&lat=1&date=13-45", "date"),
        ("/api/point?lon=1&lat=1&species=nope", "--species 'nope': not in the model"),
        ("/api/grid?species=nope", "--species 'nope'"),
        ("/api/grid?layer=species", "species: missing"),
        ("/api/grid?layer=tiles&species=x", "layer: expected one of species, richness, embedding"),
        ("/api/grid?layer=richness&res=0", "res: expected a number in [0.01, 10]"),
        ("/api/grid?layer=richness&res=inf", "res: expected a number"),
        ("/api/grid?layer=richness&res=0.01", "expected at most"),
        ("/api/records?limit=-3", "limit: expected an integer"),
        ("/api/grid?species=" + "x" * 600, "expected at most 500 printable characters"),
    ],
)
def test_bad_parameters_are_400_one_line(sdm_server: MapServer, query: str, message: str) -> None:
    status, ctype, body = get(sdm_server, query)
    assert status == 400 and ctype == "application/json"
    assert body.endswith("\n") and body.count("\n") == 1
    assert message in json.loads(body)["error"]


def test_date_for_a_run_without_time_is_400(prior_server: MapServer) -> None:
    status, _, body = get(prior_server, "/api/point?lon=1&lat=1&date=06-15")
    assert status == 400 and "fitted without dates" in json.loads(body)["error"]


@pytest.mark.parametrize(
    "path",
    ["/static/../../pyproject.toml", "/static/%2e%2e/server.py", "/static/vendor/leaflet/leaflet.js",
     "/static/..%2f..%2fwebmap.py", "/../../../etc/passwd", "/static/", "/api/nothing", "/static/app.js/"],
)
def test_traversal_and_unknown_paths_are_404(sdm_server: MapServer, path: str) -> None:
    status, ctype, body = get(sdm_server, path)
    assert status == 404 and ctype == "application/json" and body.count("\n") == 1
    assert "import" not in body and "root:" not in body


def test_other_methods_are_405(sdm_server: MapServer) -> None:
    status, _, body = get(sdm_server, "/api/info", method="POST")
    assert status == 405 and "use GET" in body


def test_cli_errors_one_line_exit_2(tmp_path: Path, sdm_server: MapServer, sdm_run: Path) -> None:
    r = CliRunner().invoke(cli, ["serve", str(tmp_path)])
    assert r.exit_code == 2 and "neither an SDM run" in r.output and r.output.count("\n") == 1
    r = CliRunner().invoke(cli, ["serve", str(sdm_run), "--port", str(sdm_server.port)])  # port taken
    assert r.exit_code == 2 and "cannot listen there" in r.output, r.output


def test_cli_serves_until_stopped(sdm_run: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "geocsp", "serve", str(sdm_run), "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "serving" in line and "http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.poll() else "")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/info")
        assert json.loads(conn.getresponse().read())["species"] == SPECIES
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_prior_with_time_uses_the_date(tmp_path: Path) -> None:
    run = make_prior_run(tmp_path / "timed", time=True)
    for srv in _start(RunView(run, region=REGION, res_deg=4.0)):
        assert get_json(srv, "/api/info")["has_time"] is True
        p = get_json(srv, "/api/point?lon=2&lat=3&k=5&date=03-01")
        prior = load_prior(run)
        ex = encode_day_of_year(torch.tensor([60.0]))
        probs = prior.probs(torch.tensor([[2.0, 3.0]]), ex).detach().numpy()[0]
        assert np.allclose([t[1] for t in p["top"]], np.sort(probs)[::-1], atol=1e-6)
        assert p["top"] != get_json(srv, "/api/point?lon=2&lat=3&k=5&date=09-01")["top"]
        assert get_json(srv, "/api/grid?layer=embedding&date=03-01")["w"] == 10


def test_table_covariate_sdm_is_served_but_has_no_grid(tmp_path: Path) -> None:
    run = make_table_sdm_run(tmp_path / "table")
    for srv in _start(RunView(run, region=REGION, res_deg=4.0)):
        assert get_json(srv, "/api/info")["species"] == SPECIES[:2]
        status, _, body = get(srv, "/api/grid?species=Bradypus+variegatus")
        assert status == 400 and "table covariates" in body
        status, _, body = get(srv, "/api/point?lon=1&lat=1")
        assert status == 400 and "missing covariate column 'warmth'" in body
