"""fit_run: the library call behind `geocsp sdm fit` (config in, run directory and metrics out)."""

from __future__ import annotations

import json

import pytest

from geocsp.errors import ConfigError
from geocsp.sdm import (
    BackgroundConfig,
    FitOptions,
    ModelChoice,
    RecordsConfig,
    SDMFitConfig,
    fit_run,
)
from geocsp.sdm.model import MODEL_DIR
from geocsp.sdm.predict import PRESENCES_FILE
from geocsp.training.rundir import METRICS_FILE


def _config(synth_tables) -> SDMFitConfig:
    return SDMFitConfig(
        RecordsConfig(str(synth_tables["records"]), species_col="species", covariates=("warmth",)),
        BackgroundConfig(path=str(synth_tables["bg"])),
        ModelChoice(encoder="wrap"),
        FitOptions(epochs=1, min_steps=1, device="cpu"),
    )


def test_fit_run_writes_the_run_and_refuses_to_overwrite(synth_tables, tmp_path) -> None:
    out = tmp_path / "run"
    metrics = fit_run(_config(synth_tables), out)
    assert metrics["n_presences"] == 300 and metrics["n_background"] == 800 and metrics["inputs"] == "both"
    assert json.loads((out / METRICS_FILE).read_text()) == metrics
    assert (out / MODEL_DIR / "model.safetensors").is_file() and (out / PRESENCES_FILE).is_file()
    assert not list(tmp_path.glob(".run*"))
    with pytest.raises(ConfigError, match="already holds a fitted model"):
        fit_run(_config(synth_tables), out)


@pytest.mark.parametrize("name", ["metrics.json", "config.yaml", "prior", PRESENCES_FILE])
def test_fit_run_refuses_a_directory_holding_another_runs_files(synth_tables, tmp_path, name) -> None:
    """Was: a training run's metrics.json replaced by the SDM's, model/ mixed into it, exit 0."""
    out = tmp_path / "csp"
    out.mkdir()
    (out / name).write_text("theirs") if "." in name else (out / name).mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=rf"csp: already holds {name} \(another run\?\); choose a new directory"):
        fit_run(_config(synth_tables), out)
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "notes.txt"])
    other = tmp_path / "mine"  # a folder of unrelated files is still fine: they are kept
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    fit_run(_config(synth_tables), other)
    assert (other / "notes.txt").read_text() == "mine" and (other / MODEL_DIR).is_dir()
