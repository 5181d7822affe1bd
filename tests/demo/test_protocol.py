"""``geocsp bench paper --data DIR``: any dataset, the auto preset, methods by name, and the
same Table 1 as ``geocsp demo`` on the same world."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.data import load_dataset, make_world
from geocsp.demo.autopreset import auto_preset, protocol_ratios
from geocsp.demo.run import check_protocol_data
from geocsp.demo.tables import (
    METHODS,
    TABLES,
    is_geoworld,
    methods_by_name,
    settings_for,
)
from geocsp.errors import ConfigError, DatasetError
from geocsp.experiments.plan import CROSSFIT_AUTO_FOLDS, resolve_crossfit


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small GeoWorld without its true ranges: a dataset like any user's."""
    world = make_world("small", seed=0, out=tmp_path_factory.mktemp("w") / "small")
    out = tmp_path_factory.mktemp("p") / "mydata"
    shutil.copytree(world, out, ignore=shutil.ignore_patterns("truth.npz"))
    return out


def test_methods_by_name() -> None:
    chosen = methods_by_name("img-only, sup-grid,CSP-MC-BLD")
    assert chosen is not None and [m.name for m in chosen] == ["Img. Only", "Sup. Only (grid)", "CSP-MC-BLD"]
    assert methods_by_name(None) is None and methods_by_name("") is None
    assert tuple(METHODS.get(n).obj for n in METHODS.names()[:len(TABLES[1])]) == TABLES[1]  # then extras
    with pytest.raises(ConfigError, match="did you mean"):
        methods_by_name("csp-mc-bd")
    with pytest.raises(ConfigError, match="expected distinct names"):
        methods_by_name("mse,MSE")


def test_auto_preset_rules(plain: Path, tmp_path: Path) -> None:
    ds = load_dataset(plain)
    assert not is_geoworld(plain)
    preset = auto_preset(ds)
    assert preset["demo"]["ratios"] == protocol_ratios(ds.split("val").prob_keys) == [0.05, 0.1, 0.2, 1.0]
    ft, pre = preset["finetune"], preset["pretrain"]
    labels = ds.split("train").labels
    n_min = sum(max(1, round(0.05 * int((labels == c).sum()))) for c in range(len(ds.classes)))
    b = ft["data"]["batch_size"]
    assert b <= n_min / 4 < 2 * b and 1 <= ft["data"]["epochs"] <= 30
    assert pre["data"]["batch_size"] <= (len(ds.split("train")) + len(ds.split("unlabeled"))) / 4
    assert pre["data"]["use_unlabeled"] is True and pre["objective"]["name"] == "csp-mc-bld"
    assert ft["model"] == pre["model"] and ft["model"]["encoder"] == "grid"
    # the default preset for a dataset that is not a GeoWorld is auto, written to OUT
    s = settings_for(data=str(plain), out=tmp_path, jobs=1)
    assert Path(s.preset) == tmp_path / "preset-auto.yaml" and s.ratios == (0.05, 0.1, 0.2, 1.0)
    assert yaml.safe_load(Path(s.preset).read_text())["finetune"]["data"]["batch_size"] == b
    assert settings_for(data=str(make_world("small", seed=0)), quick=True, jobs=1).preset == "geoworld-quick"


def test_protocol_data_checks(plain: Path) -> None:
    ds = load_dataset(plain)
    check_protocol_data(ds, TABLES[1], (0.05, 1.0))
    with pytest.raises(DatasetError, match=r"split 'val' has no image probabilities 'ratio0.300' for λ=0.3 "
                                           r"\(stored: .*\); add them \(docs/protocol.md\) or choose --ratios$"):
        check_protocol_data(ds, TABLES[1], (0.3,))
    with pytest.raises(ConfigError, match="img-only reads the fine-tuning runs"):
        check_protocol_data(ds, TABLES[1][:1], (1.0,))


@pytest.mark.parametrize("method", ["csp-zs-pool", "csp-kde"])
def test_a_method_that_needs_calib_is_refused_before_any_run(plain: Path, tmp_path: Path, method: str) -> None:
    res = CliRunner().invoke(cli, ["bench", "paper", "--data", str(plain), "--methods", f"img-only,{method}",
                                   "--seeds", "1", "--ratios", "0.1", "--jobs", "1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "labelled 'calib' split" in res.output and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "labelled 'calib' split" in errors[0]  # one line (after the run's header)
    assert not (tmp_path / "o").exists()  # refused before the pre-training runs; the folder it made is gone


def test_a_dataset_without_val_is_refused_saying_so(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("species,lon,lat\na,10.5,20.1\nb,11,21\na,10.6,20.2\n")
    assert CliRunner().invoke(cli, ["data", "import-table", str(tmp_path / "p.csv"), "--label-col", "species",
                                    "--out", str(tmp_path / "ds")]).exit_code == 0
    res = CliRunner().invoke(cli, ["bench", "paper", "--data", str(tmp_path / "ds"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "no 'val' split (splits: train); the protocol scores on val" in res.output
    assert not (tmp_path / "o").exists()  # nothing left behind


def _bench(args: list[str]) -> tuple[list[dict], str]:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "results.json").read_text())["rows"], res.output


def test_bench_on_plain_data_with_methods(plain: Path, tmp_path: Path) -> None:
    rows, output = _bench(["bench", "paper", "--data", str(plain), "--methods", "img-only,sup-grid",
                           "--seeds", "1", "--ratios", "0.1", "--jobs", "1", "--crossfit", "0",
                           "--out", str(tmp_path / "o")])
    assert [r["method"] for r in rows] == ["Img. Only", "Sup. Only (grid)"]
    # no calib split and cross-fitting switched off: no calibrated number, and one note says why
    assert rows[1]["cal_top1_mean"] is None and "calibrated fusion missing in some runs: no calibrated" in output
    assert "one seed: no confidence interval" in output
    assert "range maps skipped" in output and not (tmp_path / "o" / "range_maps.png").exists()
    assert (tmp_path / "o" / "preset-auto.yaml").is_file() and (tmp_path / "o" / "comparisons.csv").is_file()
    title = (tmp_path / "o" / "results.md").read_text().splitlines()[0]
    assert title == f"# Table 1: fused top-1 on {plain.name} val"  # the data's name, not GeoWorld's
    res = CliRunner().invoke(cli, ["bench", "paper", "--table", "2", "--methods", "mse", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--methods: applies to --table 1" in res.output


@pytest.mark.parametrize("crossfit", [None, "2"])
def test_bench_crossfit_gives_the_calibrated_column_without_a_calib_split(plain: Path, tmp_path: Path,
                                                                          crossfit: str | None) -> None:
    """Without a calib split but with train probabilities, the default (auto) cross-fits on 3 folds."""
    rows, output = _bench(["bench", "paper", "--data", str(plain), "--methods", "img-only,sup-grid", "--seeds", "1",
                           "--ratios", "0.1", "--jobs", "1", "--no-figures",
                           *(["--crossfit", crossfit] if crossfit else []), "--out", str(tmp_path / "o")])
    assert rows[1]["cal_top1_mean"] is not None and "calibrated fusion missing" not in output
    (run,) = (tmp_path / "o" / "runs" / "finetune").iterdir()
    fusion = json.loads((run / "metrics.json").read_text())["fusion"]
    k = crossfit or "3"
    assert fusion["fitted_on"] == f"crossfit-train-k{k}" and (run / "crossfit" / f"fold{int(k) - 1}").is_dir()
    saved = json.loads((tmp_path / "o" / "results.json").read_text())["meta"]["settings"]
    assert saved["crossfit_folds"] == int(k)  # the resolved number is recorded, not "auto"
    res = CliRunner().invoke(cli, ["bench", "paper", "--data", str(plain), "--crossfit", "1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--crossfit: expected auto, 0 (off) or K >= 2 folds, got 1" in res.output


def test_bench_on_the_demo_world_prints_the_demo_table(tmp_path: Path) -> None:
    """bench paper --data <the quick demo's world> --preset geoworld-quick == demo --quick, digit for digit."""
    world = make_world("small-calib", seed=0)
    common = ["--seeds", "1", "--ratios", "0.1", "--jobs", "1", "--no-figures"]
    demo_rows, demo_out = _bench(["demo", "--quick", *common, "--out", str(tmp_path / "d")])
    bench_rows, bench_out = _bench(["bench", "paper", "--data", str(world), "--preset", "geoworld-quick", *common,
                                    "--out", str(tmp_path / "b")])  # own runs folder: trained again
    key = ("method", "ratio", "top1_mean", "top1_std", "seeds", "cal_top1_mean")
    assert [[r[k] for k in key] for r in bench_rows] == [[r[k] for k in key] for r in demo_rows]
    table = demo_out[demo_out.index("Ratio λ"):demo_out.index("\nfused top-1 %")]
    assert table in bench_out and "Img. Only" in table


def test_resolve_crossfit_auto(plain: Path, tmp_path: Path) -> None:
    ds = load_dataset(plain)  # no calib split, out-of-fold train probabilities for every ratio (GeoWorld v5)
    assert resolve_crossfit("auto", ds, (0.1, 1.0)) == CROSSFIT_AUTO_FOLDS == 3
    assert resolve_crossfit(0, ds, (0.1,)) == 0 and resolve_crossfit(5, ds, (0.1,)) == 5
    assert resolve_crossfit("auto", ds, (0.3,)) == 0  # no train probabilities 'ratio0.300': nothing to cross-fit on
    calib = load_dataset(make_world("small", seed=0, calib_per_class=2, out=tmp_path / "c"))
    assert resolve_crossfit("auto", calib, (0.1,)) == 0  # a calib split: the fusion is fitted there
