"""Pretrained location encoders, converted offline into geocsp checkpoints (docs/pretrained.md).

``geocsp.pretrained.load("geoclip")`` returns a :class:`~geocsp.nets.LocationEncoder` taking
(lon, lat) in degrees; ``geocsp.checkpoints.load_encoder`` (so ``geocsp embed --encoder``,
``finetune --init``) accepts the same names. Each entry registers itself in
:data:`PRETRAINED` in its own module, imported here.
"""

from __future__ import annotations

from geocsp.pretrained import geoclip as _geoclip  # noqa: F401  (registers "geoclip")
from geocsp.pretrained.registry import (
    PREFIX,
    PRETRAINED,
    ModelCard,
    PretrainedModel,
    cache_path,
    convert,
    load,
    package_weights,
    pretrained_name,
    pretrained_rows,
    sha256_file,
)

__all__ = [
    "PREFIX",
    "PRETRAINED",
    "ModelCard",
    "PretrainedModel",
    "cache_path",
    "convert",
    "load",
    "package_weights",
    "pretrained_name",
    "pretrained_rows",
    "sha256_file",
]
