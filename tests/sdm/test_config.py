"""The fit configs: losses from the registry, field-named validation messages."""

from __future__ import annotations

import pytest

from geocsp.errors import ConfigError
from geocsp.objectives import list_finetune_losses
from geocsp.sdm import (
    LOSSES,
    BackgroundConfig,
    EvalConfig,
    FitOptions,
    ModelChoice,
    RecordsConfig,
    SDMFitConfig,
)


def test_losses_are_the_registered_presence_only_losses() -> None:
    assert LOSSES == ("full", "an_full", "an_ssdl", "an_slds")
    assert set(LOSSES) <= set(list_finetune_losses())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FitOptions(epochs=0), "epochs must be >= 1, got 0"),
        (lambda: FitOptions(lr=0.0), "lr must be > 0"),
        (lambda: BackgroundConfig(sample=-1), "background.sample must be >= 1 points, got -1"),
        (lambda: BackgroundConfig(sample=10**12), "background.sample must be <= 10,000,000 points, got 1,000,000,"),
        (lambda: BackgroundConfig(sampler="sea"), "background.sampler must be one of land, sphere"),
        (lambda: ModelChoice(inputs="image"), "model.inputs must be one of"),
        (lambda: EvalConfig(cv_folds=1), "evaluation.cv_folds must be 0 (no CV) or >= 2, got 1"),
        (lambda: RecordsConfig("r.csv", covariates=("a",), rasters=("b.tif",)), "are exclusive"),
        (lambda: SDMFitConfig(RecordsConfig("r.csv")), "no background: set background.path"),
        (lambda: SDMFitConfig(RecordsConfig("r.csv"), BackgroundConfig(sample=10)), "background.sample needs records.region"),
        (lambda: SDMFitConfig(RecordsConfig("r.csv", covariates=("a",), region="0,0,1,1"), BackgroundConfig(sample=10)),
         "cannot give table covariates"),
    ],
)
def test_invalid_values_name_the_field(build, message) -> None:
    with pytest.raises(ConfigError) as e:
        build()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_default_inputs_follow_the_covariates() -> None:
    bg = BackgroundConfig(path="bg.csv")
    assert SDMFitConfig(RecordsConfig("r.csv"), bg).inputs == "position"
    assert SDMFitConfig(RecordsConfig("r.csv", rasters=("a.tif",)), bg).inputs == "both"
    assert SDMFitConfig(RecordsConfig("r.csv", covariates=("a",)), bg, ModelChoice(inputs="covariates")).inputs == "covariates"
