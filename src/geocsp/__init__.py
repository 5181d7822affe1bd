"""geocsp: contrastive spatial pre-training (CSP) of location encoders and geo-priors.

Conventions used in every docstring:

* locations are ``(lon, lat)`` in **degrees**, arrays of shape ``(B, 2)`` or ``(N, 2)``;
* B = batch size, N = number of rows, D = image-feature dimension, d = location-embedding
  dimension, Q = number of classes, C = random negative locations per sample,
  S = number of scales (frequencies) of a multi-scale position encoder.

The public API is imported lazily so that ``import geocsp`` (and ``geocsp --help``) stay
fast; torch is loaded on first use of a torch-backed name.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "validate_lonlat": "geocsp.coords",
    "lonlat_to_xyz": "geocsp.coords",
    "great_circle_km": "geocsp.coords",
    "create_encoder": "geocsp.encoders",
    "list_encoders": "geocsp.encoders",
    "get_encoder_config": "geocsp.encoders",
    "LocationEncoder": "geocsp.pretrained",
    "LocationEncoderConfig": "geocsp.nets",
    "load_dataset": "geocsp.data",
    "make_world": "geocsp.data",
    "pretrain": "geocsp.training",
    "finetune": "geocsp.training",
    "evaluate": "geocsp.training",
    "predict": "geocsp.training",
    "embed": "geocsp.training",
    "GeoPrior": "geocsp.prior",
    "fuse": "geocsp.prior",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'geocsp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
