"""Tiny saved priors and encoders (random weights: export and rasters need no training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.prior import GeoPrior

CLASSES = ["Quercus robur", "Pinus sylvestris", "Fagus sylvatica", "Betula pendula", "Picea abies"]


def tiny_encoder(extra_dim: int = 0) -> LocationEncoder:
    torch.manual_seed(0)
    config = LocationEncoderConfig(encoder="sphereC+", encoder_args={"num_scales": 8, "r_min_deg": 1.0},
                                   network="fcnet", network_args={"num_res_blocks": 1}, dim=32, extra_dim=extra_dim)
    return LocationEncoder(config).eval()


@pytest.fixture(scope="package")
def prior_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with ``prior/`` (kind geoprior), 5 named classes."""
    run = tmp_path_factory.mktemp("export") / "run"
    enc = tiny_encoder()
    GeoPrior(enc, torch.randn(len(CLASSES), enc.dim), CLASSES).save_pretrained(run / "prior")
    return run


@pytest.fixture(scope="package")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved location encoder directory (kind location_encoder)."""
    d = tmp_path_factory.mktemp("export") / "encoder"
    tiny_encoder().save_pretrained(d)
    return d
