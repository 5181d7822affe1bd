"""The training CLI: end to end on GeoWorld, one-line errors, and a real kill + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli


def _run(*args: str) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tiny_flags(tiny: list[str]) -> list[str]:
    return [x for t in tiny for x in ("--set", t)]


def test_cli_pipeline_end_to_end(world: Path, tiny: list[str], tmp_path: Path) -> None:
    pre, ft = tmp_path / "pre", tmp_path / "ft"
    r = _run("pretrain", "--data", world, "--out", pre, *_tiny_flags(tiny), "--epochs", "1", "--quiet")
    assert r.exit_code == 0, r.output
    assert "encoder in" in r.stdout and (pre / "encoder" / "config.json").is_file()
    r = _run("finetune", "--data", world, "--out", ft, "--init", pre, *_tiny_flags(tiny),
             "--epochs", "2", "--ratio", "0.1", "--batch-size", "128", "--quiet")
    assert r.exit_code == 0, r.output
    assert "fused" in r.stdout
    m = json.loads((ft / "metrics.json").read_text())
    assert m["probs_key"] == "ratio0.100" and m["train"]["epoch"] == 2
    cfg = (ft / "config.yaml").read_text()
    assert "ratio: 0.1" in cfg and "batch_size: 128" in cfg and f"init: {pre}" in cfg
    r = _run("evaluate", ft, "--data", world, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["fused"] == m["fused"]
    r = _run("predict", ft, world, "--out", tmp_path / "pred.csv", "--top-k", "2")
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(tmp_path / "pred.csv").columns[-4:]) == ["class_1", "score_1", "class_2", "score_2"]
    pd.DataFrame({"lon": [1.0, 2.0], "lat": [3.0, 4.0]}).to_csv(tmp_path / "pts.csv", index=False)
    r = _run("embed", pre, tmp_path / "pts.csv", "--out", tmp_path / "emb.parquet")
    assert r.exit_code == 0, r.output
    assert pd.read_parquet(tmp_path / "emb.parquet").shape == (2, 2 + 32)
    r = _run("embed", pre, tmp_path / "pts.csv", "--out", tmp_path / "emb.txt")  # the list named .geojson, not .npy
    assert r.exit_code == 2 and "emb.txt: expected .npy or a table (.csv, .csv.gz, .parquet, .pq, .geojson)" in r.output
    # rerun of a finished run resumes (nothing left to train) and refuses a changed config
    r = _run("finetune", "--data", world, "--out", ft, "--init", pre, *_tiny_flags(tiny),
             "--epochs", "2", "--ratio", "0.1", "--batch-size", "128", "--quiet")
    assert r.exit_code == 0 and json.loads((ft / "metrics.json").read_text()) == m
    r = _run("finetune", "--data", world, "--out", ft, "--init", pre, *_tiny_flags(tiny),
             "--epochs", "3", "--ratio", "0.1", "--batch-size", "128")
    assert r.exit_code == 2
    assert "different config (data.epochs: saved 2, now 3)" in r.stderr and "--overwrite" in r.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["pretrain", "--data", "{tmp}/nowhere", "--out", "{tmp}/run"], "nowhere"),
        (["pretrain", "--data", "{world}", "--out", "{tmp}/run", "--set", "optim.lrr=1"], "optim.lrr"),
        (["pretrain", "--data", "{world}", "--out", "{tmp}/run", "--preset", "paper-inat"], "did you mean"),
        (["finetune", "--data", "{world}", "--out", "{tmp}/run", "--ratio", "2"], "ratio"),
        (["finetune", "--data", "{world}", "--out", "{tmp}/run", "--set", "early_stop=fused"],
         "no labelled 'calib' split to choose the epoch on"),
        (["finetune", "--data", "{world}", "--out", "{tmp}/run", "--epochs", "3", "--set", "unfreeze_after=3"],
         "unfreeze_after (3) must be below data.epochs (3)"),
        (["predict", "{tmp}", "{tmp}/swap.csv", "--out", "{tmp}/p.csv"], "no fine-tuned prior"),
        (["evaluate", "{tmp}", "--data", "{world}", "--beta", "-1"], "beta"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(world: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    r = _run(*[a.format(tmp=tmp_path, world=world) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geocsp: error:") and needle in lines[0], r.stderr
    assert not (tmp_path / "run").exists()  # nothing written for a refused run


def test_cli_predict_swapped_columns(world: Path, tiny: list[str], tmp_path: Path) -> None:
    ft = tmp_path / "ft"
    assert _run("finetune", "--data", world, "--out", ft, *_tiny_flags(tiny), "--epochs", "1").exit_code == 0
    pd.DataFrame({"lon": [45.0, -33.0], "lat": [10.0, 150.0]}).to_csv(tmp_path / "swap.csv", index=False)
    r = _run("predict", ft, tmp_path / "swap.csv", "--out", tmp_path / "p.csv")
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "swap.csv" in r.stderr and "swapped" in r.stderr
    assert not (tmp_path / "p.csv").exists()


SLOW_CHECKPOINTS = """
import sys, time
import geocsp.training.rundir as rd
real = rd.RunDir.save_checkpoint
def slow(self, ckpt, keep=2):
    out = real(self, ckpt, keep)
    time.sleep(1.0)  # widen the window in which the test kills the process
    return out
rd.RunDir.save_checkpoint = slow
from geocsp.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_and_rerun_gives_the_uninterrupted_metrics(world: Path, tiny: list[str], tmp_path: Path) -> None:
    args = ["finetune", "--data", str(world), *_tiny_flags(tiny), "--epochs", "4", "--ratio", "0.2",
            "--batch-size", "128"]
    assert _run(*args, "--out", tmp_path / "full").exit_code == 0
    cut = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CHECKPOINTS, *args, "--out", str(cut)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = cut / "checkpoints" / "latest"
    deadline = time.monotonic() + 90
    while not latest.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert latest.read_text().strip() == "epoch-0001" and not (cut / "metrics.json").exists()
    r = _run(*args, "--out", cut)
    assert r.exit_code == 0, r.output
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert json.loads((cut / "metrics.json").read_text()) == full


def test_cli_outputs_are_never_silently_replaced(world: Path, ft_run: Path, tmp_path: Path) -> None:
    before = (ft_run / "metrics.json").read_bytes()
    out = tmp_path / "ev.json"
    r = _run("evaluate", ft_run, "--data", world, "--probs-key", "default", "--json", "--out", out)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == json.loads(out.read_text())
    assert (ft_run / "metrics.json").read_bytes() == before  # the run's own metrics stay
    pd.DataFrame({"lon": [1.0], "lat": [2.0]}).to_csv(tmp_path / "pts.csv", index=False)
    (tmp_path / "p.csv").write_text("x")
    (tmp_path / "e.npy").write_text("x")
    for target, args in ((out, ["evaluate", ft_run, "--data", world, "--probs-key", "default"]),
                         (tmp_path / "p.csv", ["predict", ft_run, tmp_path / "pts.csv"]),
                         (tmp_path / "e.npy", ["embed", ft_run, tmp_path / "pts.csv"])):
        r = _run(*args, "--out", target)
        assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
            f"geocsp: error: {target}: exists; pass --overwrite to replace it or choose another --out"], r.output
        r = _run(*args, "--out", target, "--overwrite")
        assert r.exit_code == 0, r.output


def test_cli_predict_renormalize(world: Path, ft_run: Path, tmp_path: Path) -> None:
    import numpy as np

    from geocsp.data import load_dataset

    q = len(load_dataset(world).classes)
    pd.DataFrame({"lon": [1.0, 5.0], "lat": [2.0, 6.0]}).to_csv(tmp_path / "pts.csv", index=False)
    np.save(tmp_path / "img.npy", np.full((2, q), 0.5 / q, np.float32))
    args = ["predict", ft_run, tmp_path / "pts.csv", "--image-probs", tmp_path / "img.npy"]
    r = _run(*args, "--out", tmp_path / "a.csv")
    assert r.exit_code == 2 and "img.npy:0: probabilities sum to 0.5" in r.stderr and "--renormalize" in r.stderr
    r = _run(*args, "--out", tmp_path / "a.csv", "--renormalize")
    assert r.exit_code == 0, r.output


def test_finetune_subset_file(world: Path, tiny: list[str], tmp_path: Path) -> None:
    """--subset: the prior trains on exactly the classifier's rows; the file is pinned by SHA-256."""
    import hashlib

    import numpy as np

    idx = tmp_path / "rows.txt"
    idx.write_text("\n".join(map(str, range(0, 400, 4))) + "\n")
    args = ["finetune", "--data", world, *_tiny_flags(tiny), "--epochs", "1", "--ratio", "0.1", "--quiet",
            "--subset", idx, "--out", tmp_path / "ft"]
    r = _run(*args)
    assert r.exit_code == 0, r.output
    cfg = (tmp_path / "ft" / "config.yaml").read_text()
    assert f"subset: {idx}" in cfg and f"subset_sha256: {hashlib.sha256(idx.read_bytes()).hexdigest()}" in cfg
    np.testing.assert_array_equal(np.load(tmp_path / "ft" / "subset" / "file.npy"), np.arange(0, 400, 4))
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["probs_key"] == "ratio0.100"
    idx.write_text("1\n2\n3\n")  # another file under the same name: refused, not silently used
    r = _run(*args)
    assert r.exit_code == 2 and "different config (subset_sha256" in r.output and "Traceback" not in r.output
    idx.write_text("1\n1\n")
    r = _run(*args[:-2], "--out", tmp_path / "ft2")
    assert r.exit_code == 2 and f"{idx}:1: row index 1 appears more than once" in r.output
    assert not (tmp_path / "ft2").exists()  # refused before the run directory is made
