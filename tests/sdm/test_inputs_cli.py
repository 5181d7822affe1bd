"""CLI inputs for SDMs (issue 18): --crs, --categorical, covariates without lon/lat, survey
groups (sdm predict --group-col, sdm evaluate), --model kde, sdm predict --grid (GeoTIFF)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from .conftest import in_disc
from .test_cli import FAST, run


def soil(ll: np.ndarray) -> np.ndarray:
    """Integer codes: 1 near the disc centre, 2 near the corner, 3 elsewhere."""
    d1 = np.hypot(ll[:, 0] - 10, ll[:, 1] - 10)
    d2 = np.hypot(ll[:, 0] - 4, ll[:, 1] - 4)
    return np.where(d1 < 4, 1, np.where(d2 < 3, 2, 3))


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> dict:
    """Records of a bird ('b1', disc) and a plant ('p1', corner), background, wide PA + env per group."""
    rng = np.random.default_rng(1)
    d = tmp_path_factory.mktemp("survey")
    b, p = in_disc(rng, 120, 10, 10, 4), in_disc(rng, 120, 4, 4, 3)
    ll = np.vstack([b, p])
    rec = pd.DataFrame({"species": ["b1"] * 120 + ["p1"] * 120, "group": ["bird"] * 120 + ["plant"] * 120,
                        "lon": ll[:, 0], "lat": ll[:, 1], "warmth": -np.hypot(ll[:, 0] - 10, ll[:, 1] - 10),
                        "soil": soil(ll)})
    bll = rng.uniform(0, 20, (600, 2))
    bg = pd.DataFrame({"lon": bll[:, 0], "lat": bll[:, 1], "warmth": -np.hypot(bll[:, 0] - 10, bll[:, 1] - 10),
                       "soil": soil(bll)})
    rec.to_csv(d / "rec.csv", index=False)
    bg.to_csv(d / "bg.csv", index=False)
    out = {"dir": d, "rec": d / "rec.csv", "bg": d / "bg.csv", "recdf": rec, "bgdf": bg}
    for grp, sp, (cx, cy, r), n in (("bird", "b1", (10, 10, 4), 40), ("plant", "p1", (4, 4, 3), 30)):
        sll = rng.uniform(0, 20, (n, 2))
        ids = [f"{grp}{i}" for i in range(n)]
        pa = pd.DataFrame({"group": grp, "siteid": ids, "lon": sll[:, 0], "lat": sll[:, 1],
                           sp: (np.hypot(sll[:, 0] - cx, sll[:, 1] - cy) < r).astype(int)})
        env = pd.DataFrame({"siteid": ids, "warmth": -np.hypot(sll[:, 0] - 10, sll[:, 1] - 10), "soil": soil(sll)})
        if grp == "plant":
            env.loc[:4, "soil"] = 4  # a level never seen in fitting
        pa.to_csv(d / f"pa_{grp}.csv", index=False)
        env.to_csv(d / f"env_{grp}.csv", index=False)
        out[grp] = n
    return out


@pytest.fixture(scope="module")
def cat_run(survey, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("cat") / "run"
    r = run("sdm", "fit", survey["rec"], "--species-col", "species", "--covariates", "warmth", "--categorical", "soil",
            "--background", survey["bg"], "--group-col", "group", "--inputs", "covariates", *FAST, "--out", out)
    assert r.exit_code == 0, r.output
    return {"out": out, "output": r.output}


def test_categorical_fit_stores_levels_and_groups(cat_run) -> None:
    cfg = json.loads((cat_run["out"] / "model" / "config.json").read_text())
    assert cfg["covariates"]["names"] == ["warmth", "soil=1", "soil=2", "soil=3"]
    assert cfg["options"]["categorical"] == {"soil": ["1", "2", "3"]}
    assert cfg["options"]["groups"] == {"b1": ["bird"], "p1": ["plant"]}
    assert "warning" not in cat_run["output"]  # soil is declared: no integer-code warning


def test_undeclared_integer_codes_warn_one_line(survey, tmp_path) -> None:
    r = run("sdm", "fit", survey["rec"], "--species-col", "species", "--covariates", "warmth,soil",
            "--background", survey["bg"], "--inputs", "covariates", *FAST, "--out", tmp_path / "r")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("geocsp: warning:")]
    assert len(lines) == 1 and "'soil'" in lines[0] and "--categorical soil" in lines[0]
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["warnings"] == [lines[0][len("geocsp: warning: "):]]


def test_predict_group_col_scores_only_the_sites_group(survey, cat_run, tmp_path) -> None:
    sites = pd.concat([pd.read_csv(survey["dir"] / f"pa_{g}.csv").merge(pd.read_csv(survey["dir"] / f"env_{g}.csv"))
                       for g in ("bird", "plant")], ignore_index=True)
    sites.to_csv(tmp_path / "s.csv", index=False)
    r = run("sdm", "predict", cat_run["out"], tmp_path / "s.csv", "--group-col", "group", "--site-col", "siteid",
            "--out", tmp_path / "long.csv")
    assert r.exit_code == 0, r.output
    assert "levels never seen in fitting (4)" in r.output  # unseen soil level: warned, not refused
    long = pd.read_csv(tmp_path / "long.csv")
    assert len(long) == survey["bird"] + survey["plant"]  # one species per site: its group's
    assert set(long[long.site_id.str.startswith("bird")].species) == {"b1"}
    r = run("sdm", "predict", cat_run["out"], tmp_path / "s.csv", "--group-col", "group", "--wide",
            "--out", tmp_path / "wide.csv")
    wide = pd.read_csv(tmp_path / "wide.csv")
    assert wide.b1.notna().sum() == survey["bird"] and wide.p1.notna().sum() == survey["plant"]
    r = run("sdm", "predict", cat_run["out"], tmp_path / "s.csv", "--out", tmp_path / "all.csv")
    assert len(pd.read_csv(tmp_path / "all.csv")) == 2 * len(sites)


def test_evaluate_scores_each_species_on_its_groups_sites(survey, cat_run, tmp_path) -> None:
    d = survey["dir"]
    args = ["sdm", "evaluate", cat_run["out"], "--pa", d / "pa_bird.csv", "--pa", d / "pa_plant.csv",
            "--env", d / "env_bird.csv", "--env", d / "env_plant.csv", "--site-col", "siteid", "--group-col", "group"]
    r = run(*args, "--out", tmp_path / "ev.json")
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "ev.json").read_text())
    per = ev["per_species"]
    assert per["b1"]["n_sites"] == survey["bird"] and per["p1"]["n_sites"] == survey["plant"]
    assert per["b1"]["groups"] == ["bird"] and ev["n_sites"] == survey["bird"] + survey["plant"]
    assert ev["mean_auc"] == pytest.approx(np.mean([per["b1"]["auc"], per["p1"]["auc"]]))
    assert per["b1"]["auc"] > 0.8  # warmth separates the disc
    r = run(*args, "--out", tmp_path / "ev.json")
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = run(*args, "--out", tmp_path / "ev.csv")
    csv = pd.read_csv(tmp_path / "ev.csv")
    assert csv.species.tolist() == ["b1", "p1", "mean"] and csv.auc.iloc[-1] == pytest.approx(ev["mean_auc"])
    r = run(*args[:-4], "--env", d / "env_bird.csv", "--out", tmp_path / "x.json")
    assert r.exit_code == 2 and "one covariate table per --pa" in r.output and not (tmp_path / "x.json").exists()


def test_covariates_without_lonlat_columns(survey, tmp_path) -> None:
    rec = survey["recdf"].drop(columns=["lon", "lat"])
    rec.to_csv(tmp_path / "rec.csv", index=False)
    survey["bgdf"].drop(columns=["lon", "lat"]).to_csv(tmp_path / "bg.csv", index=False)
    common = ["--species-col", "species", "--covariates", "warmth", "--background", tmp_path / "bg.csv", *FAST,
              "--epochs", "40"]
    r = run("sdm", "fit", tmp_path / "rec.csv", *common, "--inputs", "covariates", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    pd.DataFrame({"warmth": [0.0, -9.0]}).to_csv(tmp_path / "s.csv", index=False)
    r = run("sdm", "predict", tmp_path / "run", tmp_path / "s.csv", "--wide", "--out", tmp_path / "p.csv")
    assert r.exit_code == 0, r.output
    p = pd.read_csv(tmp_path / "p.csv")
    assert p.b1.iloc[0] > p.b1.iloc[1]
    r = run("sdm", "fit", tmp_path / "rec.csv", *common, "--inputs", "both", "--out", tmp_path / "run2")
    assert r.exit_code == 2 and "'lon'" in r.output and not (tmp_path / "run2").exists()


def test_crs_reprojects_records_background_and_sites(tmp_path) -> None:
    pyproj = pytest.importorskip("pyproj")
    rng = np.random.default_rng(2)
    ll = np.vstack([in_disc(rng, 60, 145.5, -16.0, 0.3), in_disc(rng, 60, 146.0, -17.0, 0.3)])
    bll = np.c_[rng.uniform(145, 146.5, 300), rng.uniform(-17.5, -15.5, 300)]
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:28355", always_xy=True)
    x, y = tr.transform(ll[:, 0], ll[:, 1])
    bx, by = tr.transform(bll[:, 0], bll[:, 1])
    sp = ["a"] * 60 + ["b"] * 60
    pd.DataFrame({"species": sp, "lon": ll[:, 0], "lat": ll[:, 1]}).to_csv(tmp_path / "deg.csv", index=False)
    pd.DataFrame({"species": sp, "x": x, "y": y}).to_csv(tmp_path / "m.csv", index=False)
    pd.DataFrame({"lon": bll[:, 0], "lat": bll[:, 1]}).to_csv(tmp_path / "bgdeg.csv", index=False)
    pd.DataFrame({"x": bx, "y": by}).to_csv(tmp_path / "bgm.csv", index=False)
    r = run("sdm", "fit", tmp_path / "deg.csv", "--species-col", "species", "--background", tmp_path / "bgdeg.csv",
            "--model", "kde", "--out", tmp_path / "deg")
    assert r.exit_code == 0, r.output
    m = ["--lon-col", "x", "--lat-col", "y", "--crs", "EPSG:28355"]
    r = run("sdm", "fit", tmp_path / "m.csv", "--species-col", "species", "--background", tmp_path / "bgm.csv",
            "--model", "kde", *m, "--out", tmp_path / "proj")
    assert r.exit_code == 0, r.output
    a, b = (pd.read_csv(tmp_path / n / "presences.csv") for n in ("deg", "proj"))
    np.testing.assert_allclose(a[["lon", "lat"]], b[["lon", "lat"]], atol=1e-7)
    pd.DataFrame({"x": x[:5], "y": y[:5]}).to_csv(tmp_path / "sm.csv", index=False)
    pd.DataFrame({"lon": ll[:5, 0], "lat": ll[:5, 1]}).to_csv(tmp_path / "sd.csv", index=False)
    run("sdm", "predict", tmp_path / "proj", tmp_path / "sm.csv", *m, "--wide", "--out", tmp_path / "pm.csv")
    run("sdm", "predict", tmp_path / "deg", tmp_path / "sd.csv", "--wide", "--out", tmp_path / "pd.csv")
    np.testing.assert_allclose(pd.read_csv(tmp_path / "pm.csv")[["a", "b"]], pd.read_csv(tmp_path / "pd.csv")[["a", "b"]],
                               rtol=1e-6)
    r = run("sdm", "fit", tmp_path / "m.csv", "--species-col", "species", "--background", tmp_path / "bgm.csv",
            "--model", "kde", "--lon-col", "x", "--lat-col", "y", "--crs", "EPSG:999999", "--out", tmp_path / "bad")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "--crs" in r.output
    assert not (tmp_path / "bad").exists()


def test_kde_model_fit_and_evaluate(survey, tmp_path) -> None:
    r = run("sdm", "fit", survey["rec"], "--species-col", "species", "--background", survey["bg"], "--model", "kde",
            "--group-col", "group", "--out", tmp_path / "kde")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "kde" / "metrics.json").read_text())
    assert m["model"] == "kde" and m["inputs"] == "position"
    d = survey["dir"]
    r = run("sdm", "evaluate", tmp_path / "kde", "--pa", d / "pa_bird.csv", "--pa", d / "pa_plant.csv",
            "--group-col", "group", "--out", tmp_path / "ev.json")
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["model"] == "kde" and ev["per_species"]["p1"]["auc"] > 0.8
    r = run("sdm", "fit", survey["rec"], "--species-col", "species", "--background", survey["bg"], "--model", "kde",
            "--shrink-to-kde", "10", "--out", tmp_path / "bad")
    assert r.exit_code == 2 and "--shrink-to-kde" in r.output and "--model" in r.output


def test_shrunk_fit_records_the_chosen_k(survey, tmp_path) -> None:
    r = run("sdm", "fit", survey["rec"], "--species-col", "species", "--background", survey["bg"],
            "--shrink-to-kde", "cv", "--block-deg", "5", *FAST, "--out", tmp_path / "s")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert m["model"] == "shrunk" and m["shrink"]["folds"] == 3 and "shrunk toward the KDE" in r.output


def test_grid_geotiff_matches_predict_at_cell_centres(survey, tmp_path) -> None:
    rasterio = pytest.importorskip("rasterio")
    r = run("sdm", "fit", survey["rec"], "--species-col", "species", "--background", survey["bg"],
            "--inputs", "position", *FAST, "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    tif = tmp_path / "pred.tif"
    r = run("sdm", "predict", tmp_path / "run", "--grid", "0,0,20,10", "--res", "2.5", "--no-land-mask", "--out", tif)
    assert r.exit_code == 0, r.output
    with rasterio.open(tif) as src:
        bands = src.read()
        assert list(src.descriptions) == ["b1", "p1"] and src.crs.to_epsg() == 4326
        rows, cols = np.meshgrid(np.arange(src.height), np.arange(src.width), indexing="ij")
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())  # cell centres
    pd.DataFrame({"lon": xs, "lat": ys}).to_csv(tmp_path / "c.csv", index=False)
    r = run("sdm", "predict", tmp_path / "run", tmp_path / "c.csv", "--wide", "--out", tmp_path / "c_pred.csv")
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(tmp_path / "c_pred.csv")
    assert bands.shape == (2, 4, 8)
    np.testing.assert_allclose(bands[0].ravel(), pred.b1, rtol=1e-5)
    np.testing.assert_allclose(bands[1].ravel(), pred.p1, rtol=1e-5)
    r = run("sdm", "predict", tmp_path / "run", "--grid", "0,0,20,10", "--out", tmp_path / "p.csv")
    assert r.exit_code == 2 and ".tif" in r.output and not (tmp_path / "p.csv").exists()
