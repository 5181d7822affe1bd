"""Tiny runs for the interactive map (random weights: the map needs no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SPECIES = ["Bradypus variegatus", "Choloepus hoffmanni", "Quercus <robur>"]
CLASSES = ["Quercus robur", "Pinus sylvestris", "Fagus sylvatica", "Betula pendula", "Picea abies"]
POSITION = {"encoder": "sphereC+", "encoder_args": {"num_scales": 4, "r_min_deg": 1.0}, "network": "fcnet",
            "network_args": {"num_res_blocks": 1, "dropout": 0.0}, "dim": 16}
REGION = "-20,-10,20,10"  # West Africa and the Gulf of Guinea: land and sea


def make_sdm_run(run: Path) -> Path:
    """An SDM run (position tower with a time input), 3 species, 60 stored presences."""
    from geocsp.sdm.covariates import Standardizer  # the sdm layer only where a test needs it
    from geocsp.sdm.model import SDM, FittedSDM, SDMConfig
    from geocsp.sdm.predict import save_presences

    torch.manual_seed(0)
    model = SDM(SDMConfig(inputs="position", num_species=len(SPECIES), use_time=True, position=POSITION))
    FittedSDM(model.eval(), list(SPECIES), Standardizer((), (), ())).save(run)
    rng = np.random.default_rng(0)
    ll = np.c_[rng.uniform(-15, 15, 60), rng.uniform(-8, 8, 60)]
    save_presences(run, ll, np.array(SPECIES)[np.arange(60) % 3])
    return run


def make_table_sdm_run(run: Path) -> Path:
    """An SDM run on a table covariate ('warmth'): no values on a grid or at a bare point."""
    from geocsp.sdm.covariates import Standardizer
    from geocsp.sdm.model import SDM, FittedSDM, SDMConfig

    torch.manual_seed(0)
    model = SDM(SDMConfig(inputs="both", num_species=2, num_covariates=1, position=POSITION))
    FittedSDM(model.eval(), SPECIES[:2], Standardizer(("warmth",), (0.0,), (1.0,))).save(run)
    return run


def make_prior_run(run: Path, time: bool = False) -> Path:
    """A fine-tuned CSP run directory with ``prior/`` (5 named classes; a day-of-year input with ``time``)."""
    from geocsp.nets import LocationEncoder, LocationEncoderConfig
    from geocsp.prior import GeoPrior

    torch.manual_seed(0)
    enc = LocationEncoder(LocationEncoderConfig(**POSITION, extra_dim=2 if time else 0)).eval()
    GeoPrior(enc, torch.randn(len(CLASSES), enc.dim), CLASSES).save_pretrained(run / "prior")
    return run
