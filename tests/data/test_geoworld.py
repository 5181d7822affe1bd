"""Tests of GeoWorld (geocsp.data.geoworld*, cli/data_world.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from geocsp.coords import lonlat_to_xyz
from geocsp.data.dataset import load_dataset
from geocsp.data.geoworld import (
    GeoWorldConfig,
    generate_world,
    get_world_config,
    make_world,
    true_location_probs,
    true_range_density,
    world_report,
)
from geocsp.data.geoworld_ranges import is_land, sample_vmf, vmf_log_density, zipf_counts
from geocsp.errors import ConfigError, DatasetError

TINY = GeoWorldConfig(num_classes=12, num_genera=4, feature_dim=8, train_rows=240, unlabeled_rows=100,
                      val_per_class=4, max_train_per_class=100, land_mc_samples=200)


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the land-mask cache (and any default-path world) out of the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOCSP_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    path = make_world("small", seed=0, out=tmp_path_factory.mktemp("gw") / "small")
    return path, load_dataset(path)


def _arrays(world):
    out = {f"truth.{k}": v for k, v in world.truth.items()}
    for name, sd in world.splits.items():
        out[f"{name}.lonlat"] = sd.table[["lon", "lat"]].to_numpy()
        out[f"{name}.features"] = np.asarray(sd.features)
        out.update({f"{name}.probs.{k}": np.asarray(p) for k, p in sd.probs.items()})
    return out


def test_small_world_layout(small) -> None:
    _, ds = small
    cfg = get_world_config("small")
    assert ds.split_names == ["train", "unlabeled", "val"]
    assert len(ds.classes) == cfg.num_classes
    tr, un, va = (ds.split(n) for n in ds.split_names)
    assert len(tr) == cfg.train_rows and len(un) == cfg.unlabeled_rows
    assert len(va) == cfg.num_classes * cfg.val_per_class
    for s in (tr, un, va):
        assert s.features.dtype == np.float32 and s.features.shape == (len(s), cfg.feature_dim)
    assert (un.labels == -1).all() and (tr.labels >= 0).all()
    assert np.bincount(va.labels).tolist() == [cfg.val_per_class] * cfg.num_classes
    assert (~va.has_location).sum() == round(0.01 * len(va)) and tr.has_location.all()
    assert sorted(va.prob_keys) == ["default", "ratio0.050", "ratio0.100", "ratio0.200", "ratio1.000"]
    for key in va.prob_keys:
        p = va.probs(key)
        assert p.shape == (len(va), cfg.num_classes)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(va.probs("default"), va.probs("ratio1.000"))
    prov = ds.manifest["provenance"]["geoworld"]
    assert prov["preset"] == "small" and prov["seed"] == 0 and prov["config"]["feature_dim"] == 32


def test_ranges_on_land_and_long_tail(small) -> None:
    from global_land_mask import globe

    _, ds = small
    ll = np.concatenate([ds.split(n).lonlat for n in ds.split_names])
    ll = ll[~np.isnan(ll).any(1)]
    assert globe.is_land(ll[:, 1], ll[:, 0]).mean() >= 0.99
    counts = np.bincount(ds.split("train").labels)
    assert counts.min() >= 2 and counts.max() / counts.min() >= 10
    assert (np.sort(counts)[::-1][:4].sum() / counts.sum()) > 4 / len(counts) * 2  # head-heavy


def test_is_land_is_bit_exact_with_global_land_mask() -> None:
    from global_land_mask import globe

    rng = np.random.default_rng(5)
    ll = np.column_stack([rng.uniform(-180, 180, 300_000), rng.uniform(-90, 90, 300_000)])
    ll = np.vstack([ll, [[-180, -90], [180, 90], [179.999, 89.999], [0, 0], [-0.004, 51.5]]])
    np.testing.assert_array_equal(is_land(lonlat_to_xyz(ll)), globe.is_land(ll[:, 1], ll[:, 0]))


def test_genus_structure(small) -> None:
    path, ds = small
    tr = ds.split("train")
    genus = np.load(path / "truth.npz")["genus"]
    means = np.stack([tr.features[tr.labels == c].mean(0) for c in range(len(ds.classes))])
    d = np.linalg.norm(means[:, None] - means[None], axis=2)
    same = (genus[:, None] == genus[None]) & ~np.eye(len(genus), dtype=bool)
    diff = genus[:, None] != genus[None]
    assert d[same].mean() < 0.5 * d[diff].mean()


def test_classifier_and_report(small) -> None:
    path, _ = small
    r = world_report(path)
    img = r["image_top1"]
    assert img["default"] > 5 * r["chance_top1"]
    assert img["ratio1.000"] > img["ratio0.050"]
    assert r["location_top1"] > 2 * r["chance_top1"]
    assert r["oracle_top1"] >= img["default"]
    assert r["val_missing_location"] == 4 and r["preset"] == "small"


def test_deterministic_for_a_seed() -> None:
    a, b, c = (_arrays(generate_world(TINY, s)) for s in (3, 3, 4))
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not np.array_equal(a["train.features"], c["train.features"])
    assert not np.array_equal(a["truth.centers_lonlat"], c["truth.centers_lonlat"])


def test_classifier_probs_do_not_depend_on_the_thread_count() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threadpool_limits(limits=2):
            two = _arrays(generate_world(TINY, 5))
        torch.set_num_threads(1)
        with threadpool_limits(limits=1):
            one = _arrays(generate_world(TINY, 5))
    finally:
        torch.set_num_threads(old)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)


def test_vmf_sampler_matches_closed_form_mean_cosine() -> None:
    rng = np.random.default_rng(0)
    mu = lonlat_to_xyz(np.array([[30.0, 40.0]]))
    for kappa in (2.0, 50.0, 1000.0):
        x = sample_vmf(np.repeat(mu, 200_000, 0), np.full(200_000, kappa), rng)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
        expected = 1.0 / np.tanh(kappa) - 1.0 / kappa  # E[μ·x] = coth κ − 1/κ
        assert abs((x @ mu[0]).mean() - expected) < 3e-3 * (1 - expected + 1e-3) * 10


def test_vmf_density_integrates_to_one() -> None:
    mu = np.array([0.0, 0.0, 1.0])
    t = np.linspace(-1.0, 1.0, 400_001)  # t = cos(angle to μ); dΩ = 2π dt
    x = np.stack([np.sqrt(1 - t**2), np.zeros_like(t), t], axis=1)
    for kappa in (0.5, 20.0, 900.0):
        f = np.exp(vmf_log_density(x, mu, np.float64(kappa)))
        ref = kappa / (2 * np.pi * (1 - np.exp(-2 * kappa))) * np.exp(kappa * (t - 1))
        np.testing.assert_allclose(f, ref, rtol=1e-10, atol=1e-300)
        assert abs(2 * np.pi * np.trapezoid(f, t) - 1.0) < 1e-4


def _manual_truth():
    c = np.array([[[10.0, 50.0], [20.0, 48.0]], [[-100.0, 40.0], [-100.0, 40.0]], [[25.0, 0.0], [30.0, 5.0]]])
    return {"centers_lonlat": c, "weights": np.array([[0.3, 0.7], [1.0, 0.0], [0.5, 0.5]]),
            "kappa": np.array([40.0, 5.0, 300.0]), "land_mass": np.array([0.9, 0.6, 0.8]),
            "abundance": np.array([0.5, 0.3, 0.2])}


def test_true_location_probs_match_float64_reference() -> None:
    truth = _manual_truth()
    ll = np.array([[12.0, 49.0], [-95.0, 38.0], [28.0, 2.0], [-30.0, 0.0], [np.nan, np.nan]])
    x = lonlat_to_xyz(ll[:3])
    dens = np.zeros((3, 3))
    for c in range(3):
        k = truth["kappa"][c]
        for w, m in zip(truth["weights"][c], lonlat_to_xyz(truth["centers_lonlat"][c]), strict=True):
            dens[:, c] += w * k / (4 * np.pi * np.sinh(k)) * np.exp(k * (x @ m))
        dens[:, c] /= truth["land_mass"][c]
    ref = truth["abundance"] * dens
    ref /= ref.sum(1, keepdims=True)
    got = true_location_probs(truth, ll)
    assert is_land(x).all() and not is_land(lonlat_to_xyz(ll[3:4])).any()
    np.testing.assert_allclose(got[:3], ref, rtol=1e-9)
    np.testing.assert_allclose(got[3:], np.tile(truth["abundance"], (2, 1)), rtol=1e-12)
    np.testing.assert_allclose(true_range_density(truth, 2, ll[:3]), dens[:, 2], rtol=1e-9)
    with pytest.raises(ConfigError, match="class_index 3 out of range"):
        true_range_density(truth, 3, ll[:1])


def test_true_range_density_integrates_to_one_over_the_sphere(small) -> None:
    path, _ = small
    truth = np.load(path / "truth.npz")
    c = int(np.argmax(truth["range_km"]))  # widest range: low Monte Carlo variance
    v = np.random.default_rng(1).standard_normal((400_000, 3))
    from geocsp.coords import xyz_to_lonlat

    f = true_range_density(path, c, xyz_to_lonlat(v / np.linalg.norm(v, axis=1, keepdims=True)))
    assert abs(4 * np.pi * f.mean() - 1.0) < 0.1


def test_zipf_counts() -> None:
    n = zipf_counts(200, 10_000, 1.2, 2, 500)
    assert n.sum() == 10_000 and n.min() >= 2 and n.max() <= 500 and (np.diff(n) <= 0).all()
    mid = (n > 2) & (n < 500)
    r = np.arange(1, 201)[mid]
    slope = np.polyfit(np.log(r), np.log(n[mid]), 1)[0]
    assert abs(slope + 1.2) < 0.1


def test_make_world_reuses_and_refuses(tmp_path) -> None:
    out = tmp_path / "w"
    kw = dataclasses.asdict(TINY)
    kw["ratios"] = (0.5, 1.0)
    make_world("small", 1, out=out, **kw)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert make_world("small", 1, out=out, **kw) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    assert load_dataset(out).split("val").prob_keys == ["ratio0.500", "ratio1.000", "default"]
    with pytest.raises(DatasetError, match="pass overwrite=True"):
        make_world("small", 2, out=out, **kw)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="num_genera"):
        GeoWorldConfig(num_classes=5, num_genera=6)
    with pytest.raises(ConfigError, match="train_rows"):
        GeoWorldConfig(num_classes=10, num_genera=2, train_rows=5)
    with pytest.raises(ConfigError, match=r"unknown config key.*did you mean 'num_classes'"):
        get_world_config("small", num_clases=3)
    with pytest.raises(ConfigError, match="unknown GeoWorld preset 'smal'; did you mean 'small'"):
        get_world_config("smal")


def test_cli_make_world(tmp_path) -> None:
    from geocsp.cli.main import cli

    sets = ["--set", "num_classes=12", "--set", "num_genera=4", "--set", "feature_dim=8",
            "--set", "train_rows=240", "--set", "unlabeled_rows=100", "--set", "val_per_class=4",
            "--set", "land_mc_samples=200"]
    out = tmp_path / "cli"
    res = CliRunner().invoke(cli, ["data", "make-world", "--preset", "small", "--seed", "0",
                                   "--out", str(out), *sets])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == str(out) and "12 classes" in res.output
    assert load_dataset(out).split("train").features.shape == (240, 8)
    assert json.loads((out / "manifest.json").read_text())["provenance"]["geoworld"]["preset"] == "small"


def test_cli_bad_preset_is_one_line_exit_2(tmp_path) -> None:
    from geocsp.cli.main import cli

    res = CliRunner().invoke(cli, ["data", "make-world", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown GeoWorld preset 'huge'" in lines[0]
    assert not (tmp_path / "x").exists()


def test_full_batch_head_reaches_the_penalised_optimum() -> None:
    from geocsp.data.geoworld_classifier import ClassifierSettings, train_linear_classifier

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = (rng.standard_normal((4, 5))[y] + rng.standard_normal((120, 5))).astype(np.float32)
    s = ClassifierSettings(lbfgs_iters=500, weight_decay=0.05)
    w, b = train_linear_classifier(x, np.arange(120), y, 4, s, seed=0)
    w, b = w.double().numpy(), b.double().numpy()
    # independent float64 gradient of mean CE + λ/2 ||W||² (features centred, bias unpenalised)
    xc = x.astype(np.float64) - x.mean(0)
    bc = b + x.mean(0).astype(np.float64) @ w
    z = xc @ w + bc
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = p - np.eye(4)[y]
    assert np.abs(xc.T @ g / 120 + 0.05 * w).max() < 1e-4 and np.abs(g.mean(0)).max() < 1e-4
    assert (z.argmax(1) == y).mean() > 0.6  # chance 0.25
