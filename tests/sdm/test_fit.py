"""Fitting, predicting and save/load on the synthetic disc problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.errors import CheckpointError, ConfigError, DatasetError
from geocsp.sdm import FitOptions, FittedSDM, SDMConfig, fit_sdm
from geocsp.sdm.records import drop_rare_species

from .conftest import SMALL
from .conftest import synth_points as _data


def test_fit_is_seeded_and_save_load_identical(synth_tables, tmp_path) -> None:
    pres, bg = _data(synth_tables, date=True)
    cfg = SDMConfig(inputs="both", position=SMALL, use_time=True, num_covariates=1)
    opts = FitOptions(epochs=1, min_steps=10, seed=3, device="cpu")
    a = fit_sdm(pres, bg, cfg, opts, covariate_names=["warmth"])
    b = fit_sdm(pres, bg, cfg, opts, covariate_names=["warmth"])
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    a.save(tmp_path)
    c = FittedSDM.load(tmp_path)
    args = (pres.lonlat[:20], pres.covariates[:20], pres.doy[:20])
    assert np.array_equal(a.predict(*args), c.predict(*args))
    assert c.species == ["corner", "disc"] and c.standardizer == a.standardizer
    assert c.model.config.use_time
    # time matters: a different day changes the score
    assert not np.allclose(c.predict(args[0], args[1], np.full(20, 10.0)), c.predict(args[0], args[1], np.full(20, 190.0)))


def test_rules_and_errors(synth_tables, tmp_path) -> None:
    pres, bg = _data(synth_tables)
    one = pres.take(np.r_[np.flatnonzero(pres.species == "disc"), np.flatnonzero(pres.species == "corner")[:1]])
    kept = drop_rare_species(one, 2, "rec")
    assert set(kept.species) == {"disc"} and "1 species with < 2 records" in kept.notes[-1]
    with pytest.raises(DatasetError, match="every species has fewer than 500"):
        drop_rare_species(pres, 500, "rec")
    with pytest.raises(ConfigError, match="an_slds needs at least two species"):
        fit_sdm(kept, bg, SDMConfig(inputs="position", position=SMALL), FitOptions(loss="an_slds"))
    with pytest.raises(ConfigError, match="--inputs covariates needs covariates"):
        SDMConfig(inputs="covariates")
    with pytest.raises(ConfigError, match="--loss must be one of"):
        FitOptions(loss="bogus")
    with pytest.raises(CheckpointError):
        FittedSDM.load(tmp_path / "nothing")


def test_init_from_pretrained_encoder(synth_tables, tmp_path) -> None:
    from geocsp.nets import LocationEncoder, LocationEncoderConfig

    enc = LocationEncoder(LocationEncoderConfig(encoder="wrap", network="fcnet", dim=16,
                                                network_args={"num_res_blocks": 1, "dropout": 0.0}))
    enc.save_pretrained(tmp_path / "enc")
    pres, bg = _data(synth_tables)
    opts = FitOptions(epochs=1, min_steps=1, lr=1e-9, device="cpu")
    m = fit_sdm(pres, bg, SDMConfig(inputs="position"), opts, init_dir=tmp_path / "enc")
    ll = torch.as_tensor(pres.lonlat[:5], dtype=torch.float32)
    assert torch.allclose(m.model.position(ll), enc(ll), atol=1e-5)  # started from the encoder
    with pytest.raises(ConfigError, match="needs a position tower"):
        fit_sdm(pres, bg, SDMConfig(inputs="covariates", num_covariates=1), opts,
                covariate_names=["warmth"], init_dir=tmp_path / "enc")


def test_records_without_a_species_are_dropped_with_a_note_not_fitted_as_one() -> None:
    """Under pandas 3 a missing species stayed NaN through astype(str) and became species 'nan';
    R's NA was species 'NA'."""
    import pandas as pd

    from geocsp.sdm import InputSpec, points_from_table

    df = pd.DataFrame({"lon": [1.0, 2.0, 3.0, 4.0, 5.0], "lat": 0.0,
                       "species": ["a", None, "NA", " b ", "nan"]})
    pts = points_from_table(df, InputSpec(), "rec.csv", "species")
    assert pts.species.tolist() == ["a", "b"]
    assert pts.notes == ["rec.csv: dropped 3 of 5 rows (empty species, or NA / nan / null as text)"]


def test_with_a_crs_a_lon_or_lat_column_name_typo_is_refused_not_left_in_metres(tmp_path) -> None:
    pytest.importorskip("pyproj")
    from geocsp.sdm import read_records

    (tmp_path / "r.csv").write_text("x,y\n310878,8253485\n")
    with pytest.raises(DatasetError, match=r"r\.csv:X: column 'X' \(--lon-col/--lat-col\) not found"):
        read_records(tmp_path / "r.csv", lon_col="X", lat_col="y", crs="EPSG:28355")
    df = read_records(tmp_path / "r.csv", lon_col="x", lat_col="y", crs="EPSG:28355")
    assert -180 <= df["x"].iloc[0] <= 180 and -90 <= df["y"].iloc[0] <= 90
