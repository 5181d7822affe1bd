"""The disdat AWT dev region through the CLI (shared data; skipped when absent): metre
coordinates in EPSG:28355 (--crs), survey groups (sdm evaluate --group-col, wide PA + env)."""

from __future__ import annotations

import json

import pytest

from .test_cli import run


def test_awt_kde_with_crs_scored_on_its_own_groups_sites(shared_data, tmp_path) -> None:
    pytest.importorskip("pyproj")
    d = shared_data / "disdat_dev"
    if not (d / "AWTtrain_po.csv.gz").is_file():
        pytest.skip("disdat_dev is not present")
    m = ["--lon-col", "x", "--lat-col", "y", "--crs", "EPSG:28355"]
    r = run("sdm", "fit", d / "AWTtrain_po.csv.gz", "--species-col", "spid", "--group-col", "group",
            "--background", d / "AWTtrain_bg.csv.gz", "--model", "kde", "--bandwidth", "scott", *m,
            "--out", tmp_path / "kde")
    assert r.exit_code == 0, r.output
    r = run("sdm", "evaluate", tmp_path / "kde", *m, "--group-col", "group", "--site-col", "siteid",
            "--pa", d / "AWTtest_pa_bird.csv.gz", "--pa", d / "AWTtest_pa_plant.csv.gz",
            "--env", d / "AWTtest_env_bird.csv.gz", "--env", d / "AWTtest_env_plant.csv.gz",
            "--out", tmp_path / "ev.json")
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "ev.json").read_text())
    per = ev["per_species"]
    assert ev["n_sites"] == 442 and ev["n_species_scored"] == 40
    assert per["awt01"]["groups"] == ["bird"] and per["awt01"]["n_sites"] == 340  # birds: bird sites only
    assert per["awt21"]["groups"] == ["plant"] and per["awt21"]["n_sites"] == 102
    # the same KDE through geocsp.sdm.baselines.KDEBaseline on the data set's own lon/lat columns: 0.5994
    assert ev["mean_auc"] == pytest.approx(0.5994, abs=5e-4)
