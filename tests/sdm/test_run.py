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
