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
