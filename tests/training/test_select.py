"""Model selection of the prior by K-fold CV on the labelled subset (``finetune.select``, issue 16 item 4).

Hand-written worlds keep each test to seconds: two classes in alternating 5°-wide longitude
stripes (only a multi-scale encoder with fine enough scales can draw them; the smooth wrap
encoder cannot), and the 4-quadrant world of the cross-fit tests, whose reported split is
watched for reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from tests.training.test_crossfit import TINY, _watched
from tests.training.test_crossfit import _world as quadrant_world

from geocsp.checkpoints import load_prior
from geocsp.cli.main import cli
from geocsp.config import dump_yaml, from_dict, load_yaml, to_dict
from geocsp.data import GeoDataset, load_dataset
from geocsp.data.writer import SplitData, write_dataset
from geocsp.errors import ConfigError
from geocsp.training import FinetuneConfig, finetune, resolve_config
from geocsp.training.candidates import MODEL_CANDIDATES
from geocsp.training.config import SelectConfig
from geocsp.training.crossfit import FoldPlan
from geocsp.training.select import balanced_mean, candidate_config, seen_rows, select_model

STRIPES = ["device=cpu", "quiet=true", "model.dim=16", "model.network_args.hidden_dim=32",
           "model.encoder_args.num_scales=16", "data.batch_size=32", "data.epochs=30", "ratio=1.0"]


def _stripes(rng: np.random.Generator, n: int) -> SplitData:
    lon, lat = rng.uniform(-50, 50, n), rng.uniform(-30, 30, n)
    y = np.floor(lon / 5).astype(int) % 2
    return SplitData(pd.DataFrame({"lon": lon, "lat": lat, "label": np.array(["a", "b"])[y]}))


@pytest.fixture(scope="module")
def stripes(tmp_path_factory: pytest.TempPathFactory) -> GeoDataset:
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("stripes") / "w"
    return load_dataset(write_dataset(root, {"train": _stripes(rng, 400), "val": _stripes(rng, 100)}, ["a", "b"]))


def test_cv_picks_the_encoder_that_can_draw_the_ranges(stripes: GeoDataset, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = resolve_config(FinetuneConfig, overrides=[*STRIPES, "select.candidates=[wrap, grid-r1]"])
    m = finetune(cfg, stripes, tmp_path / "run")
    sel = m["select"]
    wrap, grid = sel["candidates"]["wrap"], sel["candidates"]["grid-r1"]
    assert sel["chosen"] == "grid-r1" and sel["k"] == 3 and sum(sel["fold_rows"]) == 400
    # wrap learns nothing about 5° stripes (held-out log-likelihood at chance, log 1/2); grid does
    assert abs(wrap["mean"] - np.log(0.5)) < 0.005 and grid["mean"] > wrap["mean"] + 0.01
    assert grid["top1"] > wrap["top1"] + 0.1 and len(grid["folds"]) == 3
    # the final prior is the chosen architecture, trained on the whole subset, and recorded
    assert load_prior(tmp_path / "run").encoder.config.encoder == "grid"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["select"] == sel
    assert all((tmp_path / "run" / "select" / c / "fold2" / "metrics.json").is_file() for c in ("wrap", "grid-r1"))


def test_selection_never_reads_val_or_calib(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    log: list[str] = []
    ds = _watched(quadrant_world(tmp_path / "w", calib=True, train_probs=True), log)
    cfg = resolve_config(FinetuneConfig, overrides=[*TINY, "select.candidates=[wrap, grid-r5]", "select.folds=2"])
    sel = select_model(cfg, ds, tmp_path / "run", finetune)
    assert sel is not None and sel.record["chosen"] in ("wrap", "grid-r5")
    assert "train.labels" in log and not [e for e in log if e.startswith(("val.", "calib."))], log


def test_choice_and_scores_are_deterministic_under_the_seed(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ds = quadrant_world(tmp_path / "w", calib=False, train_probs=False)
    over = [*TINY, "select.candidates=[grid-r1, wrap]", "select.folds=2", "select.epochs=2"]
    runs = [finetune(resolve_config(FinetuneConfig, overrides=[*over, f"seed={s}"]), ds, tmp_path / f"r{i}")
            for i, s in enumerate((0, 0, 1))]
    assert runs[0]["select"] == runs[1]["select"] and runs[0]["location"] == runs[1]["location"]
    assert runs[0]["select"]["candidates"] != runs[2]["select"]["candidates"]  # another seed: other folds, fits
    assert runs[0]["select"]["epochs"] == 2


def test_the_chosen_candidate_trains_exactly_as_a_run_of_its_own(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ds = quadrant_world(tmp_path / "w", calib=True, train_probs=False)
    sel = finetune(resolve_config(FinetuneConfig, overrides=[*TINY, "select.candidates=[wrap]", "select.folds=2"]),
                   ds, tmp_path / "sel")
    plain = finetune(resolve_config(FinetuneConfig, overrides=[*TINY, *MODEL_CANDIDATES.get("wrap").obj]),
                     ds, tmp_path / "plain")
    assert sel.pop("select")["chosen"] == "wrap"
    assert sel == plain  # location, fused, calibrated fusion, train loss: identical
    # resuming the finished run reuses the fold runs and gives the same metrics
    before = (tmp_path / "sel" / "select" / "wrap" / "fold0" / "metrics.json").stat().st_mtime_ns
    again = finetune(resolve_config(FinetuneConfig, overrides=[*TINY, "select.candidates=[wrap]", "select.folds=2"]),
                     ds, tmp_path / "sel")
    assert (tmp_path / "sel" / "select" / "wrap" / "fold0" / "metrics.json").stat().st_mtime_ns == before
    assert again.pop("select")["chosen"] == "wrap" and again == plain


def test_every_candidate_builds_on_the_demo_preset() -> None:
    base = resolve_config(FinetuneConfig, stage="finetune", preset="geoworld-demo")
    for name in MODEL_CANDIDATES.names():
        cfg = candidate_config(base, name)
        assert cfg.select == SelectConfig() and cfg.data == base.data and cfg.loss == base.loss
        if name != "wrap":
            assert cfg.model.network == "ffn" and cfg.model.encoder_args["num_scales"] == 32
            assert cfg.model.encoder_args["r_min_deg"] == float(name.rsplit("-r", 1)[1])
    assert candidate_config(base, "grid-r0.1").model == base.model  # grid-r0.1 is the preset's own prior


@pytest.mark.parametrize(("overrides", "needle"), [
    (["select.candidates=[wrap, gird-r1]"], "did you mean 'grid-r1'"),
    (["select.candidates=[wrap, WRAP]"], "distinct"),
    (["select.candidates=[wrap]", "select.folds=1"], "select.folds"),
    (["select.candidates=[wrap]", "select.epochs=-1"], "select.epochs"),
    (["select.candidates=[wrap]", "init=somewhere"], "random initialisation"),
])
def test_bad_selection_configs_are_refused(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        resolve_config(FinetuneConfig, overrides=overrides)


def test_select_config_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = resolve_config(FinetuneConfig, overrides=["select.candidates=[wrap, sphereC+-r5]", "select.epochs=7"])
    (tmp_path / "c.yaml").write_text(dump_yaml(to_dict(cfg)))
    back = from_dict(FinetuneConfig, load_yaml(tmp_path / "c.yaml"))
    assert back == cfg and back.select.candidates == ("wrap", "sphereC+-r5")


def test_cli_finetune_selects_on_a_tiny_world(world: Path, tiny: list[str], tmp_path: Path) -> None:
    flags = [x for t in tiny for x in ("--set", t)]
    args = ["finetune", "--data", str(world), "--out", str(tmp_path / "ft"), *flags, "--epochs", "2",
            "--ratio", "0.1", "--set", "select.candidates=[wrap,grid-r5]", "--set", "select.folds=2"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert set(m["select"]["candidates"]) == {"wrap", "grid-r5"} and m["select"]["k"] == 2
    assert m["select"]["chosen"] in ("wrap", "grid-r5") and m["fused"] is not None
    bad = CliRunner().invoke(cli, [*args[:4], str(tmp_path / "bad"), "--set", "select.candidates=[wrapp]"])
    lines = bad.stderr.strip().splitlines()
    assert bad.exit_code == 2 and len(lines) == 1 and "did you mean 'wrap'" in lines[0], bad.stderr
    assert not (tmp_path / "bad").exists()


def test_score_weighs_classes_equally_and_skips_classes_a_fold_never_saw(tmp_path: Path) -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2])  # class 2 has one row: the fold holding it never trains on it
    plan = FoldPlan(tmp_path, np.arange(7), np.array([0, 1, 0, 1, 0, 1, 0]), 2, 0)
    assert seen_rows(plan, labels).tolist() == [True] * 6 + [False]
    assert balanced_mean(np.array([-1.0, -1.0, -1.0, -1.0, -3.0, -3.0]), labels[:6]) == -2.0



def test_one_row_per_class_leaves_nothing_to_score_and_says_so(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    lonlat = rng.uniform(-60, 60, (6, 2))
    table = pd.DataFrame({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "label": list("abcdef")})
    ds = load_dataset(write_dataset(tmp_path / "w", {"train": SplitData(table)}, list("abcdef")))
    cfg = resolve_config(FinetuneConfig, overrides=[*TINY, "ratio=1.0", "select.candidates=[grid-r5, wrap]"])
    sel = finetune(cfg, ds, tmp_path / "run")["select"]
    assert sel["seen"] == 0.0 and sel["chosen"] == "grid-r5" and sel["chosen_by"].startswith("first candidate")
    assert sel["candidates"]["wrap"]["mean"] is None  # strict JSON: no NaN
    json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
