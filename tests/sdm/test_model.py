"""The SDM artifact kind: registered with geocsp.checkpoints, loaded from a run or model dir."""

from __future__ import annotations

import numpy as np

from geocsp import checkpoints
from geocsp.sdm import FitOptions, FittedSDM, SDMConfig, fit_sdm
from geocsp.sdm.model import KIND, MODEL_DIR

from .conftest import SMALL, synth_points


def test_sdm_kind_is_registered_and_loads_from_run_dir(synth_tables, tmp_path) -> None:
    pres, bg = synth_points(synth_tables)
    fitted = fit_sdm(pres, bg, SDMConfig(inputs="position", position=SMALL), FitOptions(epochs=1, min_steps=1, device="cpu"))
    fitted.save(tmp_path)
    assert checkpoints.ARTIFACT_DIRS[KIND] == MODEL_DIR
    assert checkpoints.find_artifact(tmp_path) == (tmp_path / MODEL_DIR, KIND)
    for where in (tmp_path, tmp_path / MODEL_DIR):
        loaded = checkpoints.load(where)
        assert isinstance(loaded, FittedSDM) and loaded.species == fitted.species
        args = (pres.lonlat[:10], pres.covariates[:10, :0], pres.doy[:10])
        assert np.array_equal(loaded.predict(*args), fitted.predict(*args))


def test_a_run_of_the_other_kind_is_named_in_the_error(synth_tables, tmp_path) -> None:
    """`geocsp predict` on an SDM run and `geocsp sdm predict` on a fine-tuned run say what the run is."""
    import pytest
    import torch

    from geocsp.checkpoints import load_prior
    from geocsp.errors import CheckpointError
    from geocsp.nets import LocationEncoder, LocationEncoderConfig
    from geocsp.prior import GeoPrior

    pres, bg = synth_points(synth_tables)
    fit_sdm(pres, bg, SDMConfig(inputs="position", position=SMALL),
            FitOptions(epochs=1, min_steps=1, device="cpu")).save(tmp_path / "sdm")
    with pytest.raises(CheckpointError, match=r"no fine-tuned prior found .*; sdm holds a species distribution "
                                              r"model \(use geocsp sdm predict / sdm evaluate\)$"):
        load_prior(tmp_path / "sdm")
    GeoPrior(LocationEncoder(LocationEncoderConfig(encoder="wrap", dim=8)), torch.zeros(2, 8),
             ["a", "b"]).save_pretrained(tmp_path / "ft" / "prior")
    with pytest.raises(CheckpointError, match=r"no SDM found .*run geocsp sdm fit first; ft holds a fine-tuned prior "
                                              r"\(use geocsp predict / evaluate\)$"):
        FittedSDM.load(tmp_path / "ft")
