"""The CLI: sdm fit / predict and map, incl. bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli

FAST = ["--epochs", "1", "--seed", "0", "--device", "cpu", "--encoder", "wrap"]


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def fitted_run(synth_tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    r = run("sdm", "fit", synth_tables["records"], "--species-col", "species", "--covariates", "warmth",
            "--background", synth_tables["bg"], "--date-col", "date", "--cv-folds", "2", "--block-deg", "5",
            "--pa", synth_tables["records"], *FAST, "--out", out)
    assert r.exit_code == 0, r.output
    return out


def test_fit_writes_run_and_metrics(fitted_run) -> None:
    m = json.loads((fitted_run / "metrics.json").read_text())
    assert set(m["cv"]) == {"model", "kde", "logistic", "folds"}
    assert m["cv"]["model"]["n_species"] == 2 and 0 <= m["cv"]["kde"]["mean_auc"] <= 1
    assert m["pa"]["n_sites"] == 300 and "corner" in m["pa"]["per_species"]
    assert (fitted_run / "model" / "model.safetensors").is_file()
    assert len(pd.read_csv(fitted_run / "presences.csv")) == 300


def test_predict_long_wide_and_missing_covariate(fitted_run, tmp_path) -> None:
    sites = pd.DataFrame({"id": ["a", "b"], "lon": [10.0, 1.0], "lat": [10.0, 19.0], "warmth": [0.0, -12.0],
                          "date": ["06-15", ""]})
    sites.to_csv(tmp_path / "s.csv", sep=";", index=False)
    r = run("sdm", "predict", fitted_run, tmp_path / "s.csv", "--site-col", "id", "--date-col", "date",
            "--out", tmp_path / "p.csv")
    assert r.exit_code == 0, r.output
    long = pd.read_csv(tmp_path / "p.csv")
    assert list(long.columns) == ["site_id", "species", "score"] and len(long) == 4
    assert long["score"].between(0, 1).all()
    r = run("sdm", "predict", fitted_run, tmp_path / "s.csv", "--wide", "--out", tmp_path / "w.csv")
    wide = pd.read_csv(tmp_path / "w.csv")
    assert list(wide.columns) == ["site_id", "corner", "disc"]
    sites.drop(columns="warmth").to_csv(tmp_path / "nocov.csv", index=False)
    r = run("sdm", "predict", fitted_run, tmp_path / "nocov.csv", "--out", tmp_path / "x.csv")
    assert r.exit_code == 2 and "missing covariate column 'warmth'" in r.output
    assert not (tmp_path / "x.csv").exists()
    r = run("sdm", "predict", fitted_run, tmp_path / "s.csv", "--site-col", "id", "--date-col", "date",
            "--out", tmp_path / "p.parquet")
    assert r.exit_code == 0 and pd.read_parquet(tmp_path / "p.parquet").equals(long.astype({"site_id": str})), r.output
    for suffix in (".tif", ".npy", ".txt"):  # was: CSV text written under that name, exit 0
        r = run("sdm", "predict", fitted_run, tmp_path / "s.csv", "--out", tmp_path / f"x{suffix}")
        assert r.exit_code == 2 and f"x{suffix}: site scores are a table; expected .csv" in r.output, r.output
        assert not (tmp_path / f"x{suffix}").exists()


def test_map_refuses_table_covariates(fitted_run, tmp_path) -> None:
    r = run("map", fitted_run, "--species", "disc", "--out", tmp_path / "m.png")
    assert r.exit_code == 2 and "table covariates" in r.output


def test_position_map_and_richness(synth_tables, tmp_path) -> None:
    out = tmp_path / "pos"
    r = run("sdm", "fit", synth_tables["records"], "--species-col", "species", "--background-sample", "300",
            "--background-sampler", "sphere", "--region", "0,0,20,20", *FAST, "--out", out)
    assert r.exit_code == 0, r.output
    for extra in (["--species", "disc"], ["--richness", "--threshold", "0.5"]):
        r = run("map", out, *extra, "--res", "1", "--no-land-mask", "--out", tmp_path / "m.png", "--overwrite")
        assert r.exit_code == 0, r.output
        assert (tmp_path / "m.png").stat().st_size > 1000
    r = run("map", out, "--species", "disc", "--res", "1", "--no-land-mask", "--out", tmp_path / "m.png")
    assert r.exit_code == 2 and "exists; pass --overwrite" in r.output  # a map is not replaced silently
    r = run("map", out, "--species", "nope", "--no-land-mask", "--out", tmp_path / "n.png")
    assert r.exit_code == 2 and "--species 'nope'" in r.output
    for res in ("0", "-1", "nan"):  # was a traceback (ZeroDivisionError / TypeError)
        r = run("map", out, "--species", "disc", "--res", res, "--no-land-mask", "--out", tmp_path / "z.png")
        assert r.exit_code == 2 and "--res must be a cell size > 0" in r.output, r.output
        assert not (tmp_path / "z.png").exists()
    for extra, message in ((["--res", "1e-7"], r"--res 1e-07: the grid would have [\d,]+ x [\d,]+ cells over [-\d.,]+; "
                                               r"expected at most 2\^34"),  # was 'RUN: too large to read into memory'
                           (["--res", "1e-300"], r"--res 1e-300: the grid would have"),  # was numpy's ValueError
                           (["--date", "13-45"], "--date: cannot parse '13-45'; expected MM-DD")):  # was 'row 0'
        r = run("map", out, "--species", "disc", *extra, "--no-land-mask", "--out", tmp_path / "z.png")
        assert r.exit_code == 2 and r.output.count("\n") == 1 and re.search(message, r.output), r.output
        assert not (tmp_path / "z.png").exists()


def _bad(tmp_path, df: pd.DataFrame, *extra: str) -> str:
    df.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "badrun"
    r = run("sdm", "fit", tmp_path / "bad.csv", "--species-col", "species", "--background-sample", "50",
            "--background-sampler", "sphere", "--region", "0,0,20,20", *FAST, *extra, "--out", out)
    assert r.exit_code == 2, r.output
    assert not out.exists() and not list(tmp_path.glob(".badrun*"))
    return r.output


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (lambda d: d.assign(date=["nope", *list(d.date[1:])]), ["--date-col", "date"], "cannot parse date 'nope'"),
        (lambda d: d.rename(columns={"lon": "x"}), [], "column 'lon' (--lon-col/--lat-col) not found"),
        # the flag, not the config field, and geocsp's own columns are not listed as the file's
        (lambda d: d, ["--date-col", "when"], "column 'when' (--date-col) not found"),
        (lambda d: d.drop(columns=["species"]), ["--species-col", "sp"], "column 'sp' (--species-col) not found"),
        (lambda d: d.assign(lon=d.lat, lat=d.lon + 100), [], "swapped"),
        (lambda d: d.assign(lon=d.lon + 50), [], "all 300 rows dropped (outside"),
        (lambda d: d.assign(species=[f"s{i}" for i in range(len(d))]), [], "every species has fewer than 2"),
        (lambda d: d, ["--inputs", "covariates"], "needs covariates"),
        # was a traceback (ValueError from concatenating no parts)
        (lambda d: d, ["--background-sample", "-5"], "--background-sample must be >= 1 points, got -5"),
    ],
)
def test_bad_input_exit_2(synth_tables, tmp_path, change, extra, message) -> None:
    assert message in _bad(tmp_path, change(synth_tables["rec"].copy()), *extra)


@pytest.mark.parametrize("failure", [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried "
                                                                   "to allocate 123 bytes")])
def test_a_map_grid_that_cannot_be_allocated_names_res(fitted_run, tmp_path, monkeypatch, failure) -> None:
    def fail(*_a: object, **_k: object) -> None:
        raise failure

    monkeypatch.setattr("geocsp.sdm.mapping.grid_scores", fail)
    r = run("map", fitted_run, "--species", "disc", "--res", "0.5", "--out", tmp_path / "m.png")
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert re.search(r"--res 0.5: the map grid \([\d,]+ x [\d,]+ cells over [-\d.,]+\) does not fit in memory; "
                     r"expected a larger --res or a smaller --region", r.output), r.output
    assert not list(tmp_path.iterdir())


def test_nan_coordinates_and_outside_dropped_by_rule(synth_tables, tmp_path) -> None:
    df = synth_tables["rec"].copy()
    df.loc[0, "lon"] = np.nan
    df.loc[1, "lon"] = 50.0
    df.to_csv(tmp_path / "r.csv", index=False)
    r = run("sdm", "fit", tmp_path / "r.csv", "--species-col", "species", "--background-sample", "50",
            "--background-sampler", "sphere", "--region", "0,0,20,20", *FAST, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    assert "dropped 1 of 300 rows (empty or NaN" in r.output and "dropped 1 of 299 rows (outside" in r.output


def test_lr_flag_sets_the_learning_rate(synth_tables, tmp_path) -> None:
    """--lr used to be passed into min_steps and ignored; the default reproduces the old fits."""
    from geocsp.sdm import FitOptions

    assert FitOptions().lr == 1e-3  # = the --lr default: default CLI fits are unchanged
    base = ["sdm", "fit", synth_tables["records"], "--species-col", "species", "--background",
            synth_tables["bg"], *FAST]
    weights = {}
    for lr in ("0.001", "0.05"):
        r = run(*base, "--lr", lr, "--out", tmp_path / lr)
        assert r.exit_code == 0, r.output
        cfg = json.loads((tmp_path / lr / "model" / "config.json").read_text())
        assert cfg["options"]["lr"] == float(lr)
        weights[lr] = (tmp_path / lr / "model" / "model.safetensors").read_bytes()
    assert weights["0.001"] != weights["0.05"]
    r = run(*base, "--lr", "0", "--out", tmp_path / "zero")
    assert r.exit_code == 2 and "--lr must be > 0" in r.output


def test_predict_refuses_an_existing_out(fitted_run, tmp_path) -> None:
    pd.DataFrame({"lon": [10.0], "lat": [10.0], "warmth": [0.0]}).to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "p.csv").write_text("keep")
    r = run("sdm", "predict", fitted_run, tmp_path / "s.csv", "--out", tmp_path / "p.csv")
    assert r.exit_code == 2 and "p.csv: exists; pass --overwrite" in r.output
    assert (tmp_path / "p.csv").read_text() == "keep"
    r = run("sdm", "predict", fitted_run, tmp_path / "s.csv", "--out", tmp_path / "p.csv", "--overwrite")
    assert r.exit_code == 0, r.output
    sites = (tmp_path / "s.csv").read_bytes()
    for cmd in (["predict", fitted_run, tmp_path / "s.csv"], ["evaluate", fitted_run, "--pa", tmp_path / "s.csv"]):
        r = run("sdm", *cmd, "--out", tmp_path / "s.csv", "--overwrite")  # --overwrite does not reach the input
        assert r.exit_code == 2 and "s.csv: is the input" in r.output, r.output
    assert (tmp_path / "s.csv").read_bytes() == sites


@pytest.mark.parametrize(("extra", "message"), [
    (["--species", "b1", "--html", "m.html", "--top-k", "0"], "--top-k: expected an integer in [1, 50], got 0"),
    (["--richness", "--threshold", "nan"], "--threshold: expected a finite number with --richness, got nan"),
    (["--species", "b1", "--threshold", "0.5"], "got 0.5 without --richness"),
])
def test_map_checks_every_option_before_writing(fitted_run, tmp_path, extra, message) -> None:
    """A bad --html / --threshold option used to be found after --out was written (left behind) or ignored."""
    args = [a if a != "m.html" else str(tmp_path / "m.html") for a in extra]
    r = run("map", fitted_run, *args, "--out", tmp_path / "m.png")
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not list(tmp_path.iterdir())  # nothing written
