"""Spatial-block CV of the SDM and the baselines on the synthetic disc problem."""

from __future__ import annotations

from geocsp.sdm import FitOptions, SDMConfig, fit_sdm
from geocsp.sdm.cv import kde_scorer, logistic_scorer, spatial_block_cv

from .conftest import SMALL
from .conftest import synth_points as _data

OPTS = FitOptions(epochs=1, min_steps=300, batch_size=128, lr=1e-2, seed=0, device="cpu")


def test_cv_model_beats_random_on_held_out_blocks(synth_tables) -> None:
    pres, bg = _data(synth_tables)
    cfg = SDMConfig(inputs="position", position=SMALL)

    def model(tp, tb, test, species):
        return fit_sdm(tp, tb, cfg, OPTS, species=species).predict(test.lonlat, test.covariates, test.doy)

    res = spatial_block_cv(pres, bg, {"model": model, "kde": kde_scorer, "logistic": logistic_scorer},
                           k=3, block_deg=3.0, seed=0)
    assert res["model"]["n_species_scored"] == 2
    assert res["model"]["per_species"]["disc"]["auc"] > 0.7
    assert res["model"]["mean_auc"] > 0.7
    assert res["kde"]["mean_auc"] > 0.7
    assert res["logistic"]["per_species"]["disc"]["auc"] > 0.8  # warmth peaks at the disc
    assert sum(res["folds"]["test_presences"]) == len(pres)
