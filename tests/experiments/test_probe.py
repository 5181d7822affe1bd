"""geocsp bench probe: CV folds, probes that learn what they can and nothing else, targets, JSON, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.coords import lonlat_to_xyz
from geocsp.errors import ConfigError, MissingDependencyError
from geocsp.experiments import probe_run
from geocsp.experiments.probe import (
    ProbeSettings,
    block_folds,
    block_ids,
    cross_validate,
    make_folds,
    r2_score,
    random_folds,
)
from geocsp.experiments.probe_report import results_table
from geocsp.experiments.probe_run import ProbeRun, parse_row, quick, run_probe
from geocsp.experiments.probe_targets import (
    ProbeTarget,
    build_target,
    in_polygon,
    koppen_grid,
    koppen_grid_from_csv,
)


def _sphere(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-180, 180, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))], axis=1)


@pytest.mark.parametrize(("block_deg", "k", "seed"), [(15.0, 5, 0), (20.0, 4, 1), (10.0, 3, 2), (45.0, 5, 3)])
def test_block_folds_cover_every_point_once_and_never_split_a_block(block_deg: float, k: int, seed: int) -> None:
    ll = _sphere(3000, seed)
    fold = block_folds(ll, k, block_deg, seed)
    ids = block_ids(ll, block_deg)
    assert fold.shape == (3000,) and set(np.unique(fold)) == set(range(k))
    for b in np.unique(ids):  # a block's points all lie in one fold: test blocks are disjoint from training
        assert len(np.unique(fold[ids == b])) == 1
    # points of different folds never share a block cell
    cell_lon = np.floor((ll[:, 0] + 180) / block_deg)
    cell_lat = np.floor((ll[:, 1] + 90) / block_deg)
    for f in range(k):
        test = {*zip(cell_lon[fold == f], cell_lat[fold == f], strict=True)}
        train = {*zip(cell_lon[fold != f], cell_lat[fold != f], strict=True)}
        assert not test & train
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= np.bincount(ids).max()  # greedy balance: within one block


def test_random_folds_are_a_balanced_partition() -> None:
    fold = random_folds(103, 5, 0)
    assert sorted(np.bincount(fold).tolist()) == [20, 20, 21, 21, 21]
    assert not np.array_equal(fold, random_folds(103, 5, 1))
    np.testing.assert_array_equal(fold, random_folds(103, 5, 0))


def test_bad_fold_settings_are_config_errors() -> None:
    ll = np.array([[10.0, 10.0], [11.0, 11.0], [12.0, 12.0]])
    with pytest.raises(ConfigError, match="--block-deg"):
        block_folds(ll, 2, 15.0, 0)  # all in one block
    with pytest.raises(ConfigError, match="--block-deg"):
        block_ids(ll, 0.0)
    with pytest.raises(ConfigError, match="--folds"):
        random_folds(3, 5, 0)
    with pytest.raises(ConfigError, match="cv"):
        make_folds(ll, "loo", ProbeSettings())


def _xyz_target(task: str, shuffle: bool, n: int = 800) -> tuple[torch.Tensor, ProbeTarget]:
    ll = _sphere(n, 7)
    xyz = lonlat_to_xyz(ll)
    if task == "classification":
        y: np.ndarray = (xyz @ np.array([0.6, -0.3, 0.74]) > 0).astype(np.int64)  # a plane through the centre
        classes: tuple[str, ...] = ("a", "b")
    else:
        y = 2.0 * xyz[:, 0] - xyz[:, 2] + 0.05 * np.random.default_rng(0).normal(size=n)
        classes = ()
    if shuffle:
        y = np.random.default_rng(1).permutation(y)
    return torch.as_tensor(xyz, dtype=torch.float32), ProbeTarget("synthetic", task, ll, y, classes, "test")


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_probe_learns_a_linear_target_and_not_a_shuffled_one(probe: str) -> None:
    s = ProbeSettings(folds=3, epochs=20, hidden=32, batch_size=32)  # ~350 Adam steps on 533 points
    for cv in ("random", "block"):
        x, t = _xyz_target("classification", shuffle=False)
        learned = cross_validate(x, t, make_folds(t.lonlat, cv, s), probe, s)
        x, t = _xyz_target("classification", shuffle=True)
        shuffled = cross_validate(x, t, make_folds(t.lonlat, cv, s), probe, s)
        assert learned["metric"] == "accuracy" and learned["mean"] > 0.93, (cv, learned)
        assert shuffled["mean"] < 0.6, (cv, shuffled)


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_regression_probe_r2(probe: str) -> None:
    s = ProbeSettings(folds=3, epochs=20, hidden=32, batch_size=32)  # ~350 Adam steps on 533 points
    x, t = _xyz_target("regression", shuffle=False)
    learned = cross_validate(x, t, make_folds(t.lonlat, "random", s), probe, s)
    x, t = _xyz_target("regression", shuffle=True)
    shuffled = cross_validate(x, t, make_folds(t.lonlat, "random", s), probe, s)
    assert learned["metric"] == "r2" and learned["mean"] > 0.9, learned
    assert shuffled["mean"] < 0.05, shuffled


def test_r2_of_the_mean_is_zero_and_of_the_truth_one() -> None:
    y = np.array([1.0, 2.0, 4.0])
    assert r2_score(np.full(3, y.mean()), y) == pytest.approx(0.0)
    assert r2_score(y, y) == pytest.approx(1.0)


def test_bundled_koppen_grid() -> None:
    grid, classes = koppen_grid()
    assert grid.shape == (360, 720) and len(classes) == 30
    assert int((grid != 255).sum()) == 92_416
    r, c = round((89.75 - 48.75) / 0.5), round((2.25 + 179.75) / 0.5)  # the cell holding Paris
    assert classes[grid[r, c]] == "Cfb"


def test_bundled_koppen_equals_the_shared_csv(shared_data) -> None:
    csv = shared_data / "koppen_geiger_0p5deg_kgc" / "koppen_geiger_0p5deg.csv.gz"
    if not csv.is_file():
        pytest.skip("Köppen CSV not in shared data")
    grid, classes = koppen_grid_from_csv(csv)
    bundled, bundled_classes = koppen_grid()
    assert classes == bundled_classes
    np.testing.assert_array_equal(grid, bundled)


def test_koppen_and_land_targets_are_area_uniform_and_seeded() -> None:
    k = build_target("koppen", 2000, 0)
    assert k.task == "classification" and k.y.max() < len(k.classes)
    assert np.array_equal(k.y, build_target("koppen", 2000, 0).y)
    land = build_target("land", 4000, 0)
    assert 0.2 < land.y.mean() < 0.4  # ~29 % of the sphere is land
    assert abs(np.mean(np.abs(np.sin(np.radians(land.lonlat[:, 1])))) - 0.5) < 0.03
    with pytest.raises(ConfigError, match="--n"):
        build_target("koppen", 5, 0)


def test_reference_targets_need_their_files(tmp_path) -> None:
    for name in ("precip", "country"):
        with pytest.raises(FileNotFoundError, match="reference"):
            build_target(name, 50, 0, None)
        with pytest.raises(FileNotFoundError, match="not found"):
            build_target(name, 50, 0, tmp_path)


def test_reference_targets_on_shared_data(shared_data) -> None:
    p = build_target("precip", 500, 0, shared_data)
    assert p.task == "regression" and np.isfinite(p.y).all() and 4.0 < p.y.mean() < 9.0
    assert p.lonlat[:, 1].min() >= -81 and p.lonlat[:, 1].max() <= 87
    c = build_target("country", 300, 0, shared_data)
    assert len(c.y) == 300 and c.y.min() >= 0
    names = np.array(c.classes)[c.y]
    assert set(names) & {"Russia", "Canada", "United States of America", "Brazil", "China"}


def test_in_polygon_with_a_hole() -> None:
    outer = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], dtype=float)
    hole = np.array([[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]], dtype=float)
    pts = np.array([[1.0, 1.0], [5.0, 5.0], [20.0, 5.0]])
    assert in_polygon(pts, [outer, hole]).tolist() == [True, False, False]


def test_parse_row() -> None:
    assert parse_row("raw:sphereC+") == ("sphereC+", "raw:sphereC+")
    assert parse_row("CSP (GeoWorld)=runs/pre") == ("CSP (GeoWorld)", "runs/pre")
    with pytest.raises(ConfigError, match="--encoder"):
        parse_row("=raw:wrap")


def test_results_json_schema_and_skips(tmp_path, monkeypatch) -> None:
    def no_geoclip(spec: str) -> None:
        raise MissingDependencyError(f"pretrained encoder '{spec}' needs the geoclip package")

    monkeypatch.setattr(probe_run, "DEFAULT_ROWS", ("raw:wrap", "geoclip"))
    monkeypatch.setattr(probe_run, "load_encoder", no_geoclip)
    run = quick(ProbeRun(rows=("xyz=raw:xyz",), targets=("koppen", "land", "precip"), probes=("linear",)))
    out, fig = tmp_path / "p.json", tmp_path / "p.png"
    res = run_probe(run, out, fig)
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert fig.stat().st_size > 1000
    assert res["format"] == "geocsp-probe" and res["version"] == 1
    assert {"created", "geocsp", "machine", "run", "targets", "rows", "skipped", "results"} <= set(res)
    assert list(res["rows"]) == ["wrap", "xyz"] and res["rows"]["xyz"]["dim"] == 3
    assert {s.get("row") or s.get("target") for s in res["skipped"]} == {"geoclip", "precip"}
    assert set(res["targets"]) == {"koppen", "land"}
    assert res["targets"]["koppen"]["metric"] == "accuracy" and res["targets"]["koppen"]["n"] == 300
    # per target: baseline × 2 CV + 2 rows × 1 probe × 2 CV
    assert len(res["results"]) == 2 * (2 + 2 * 1 * 2)
    for r in res["results"]:
        assert {"target", "row", "probe", "cv", "metric", "mean", "sd", "folds", "seconds"} <= set(r)
        assert r["cv"] in ("random", "block") and len(r["folds"]) == 3
        assert 0.0 <= r["mean"] <= 1.0
    table = results_table(res)
    assert table.count("\n") == 2 + 3 and "koppen acc % block" in table
    # an explicitly requested row that cannot load is an error, not a skip
    with pytest.raises(MissingDependencyError):
        run_probe(ProbeRun(rows=("geoclip",), defaults=False, targets=("land",)), None)
    with pytest.raises(ConfigError, match="exists"):
        run_probe(run, out, None)


def test_cli_quick_run(tmp_path) -> None:
    out = tmp_path / "probe.json"
    argv = ["bench", "probe", "--quick", "--no-defaults", "--encoder", "raw:sphereC+",
            "--targets", "koppen", "--probes", "linear,mlp", "--out", str(out)]
    r = CliRunner().invoke(cli, argv)
    assert r.exit_code == 0, r.output
    assert "| sphereC+ | linear |" in r.output and "koppen acc % rand" in r.output
    assert out.is_file() and (tmp_path / "probe_pca.png").is_file()
    again = CliRunner().invoke(cli, argv)
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    bad = CliRunner().invoke(cli, [*argv[:-2], "--targets", "biome", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "unknown probe target 'biome'" in bad.output
