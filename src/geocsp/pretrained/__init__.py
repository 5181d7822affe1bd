"""Pretrained location encoders, converted offline into geocsp checkpoints (docs/pretrained.md).

``geocsp.pretrained.load("geoclip")`` returns a :class:`~geocsp.nets.LocationEncoder` taking
(lon, lat) in degrees; ``geocsp.checkpoints.load_encoder`` (so ``geocsp embed --encoder``,
``finetune --init``) and :meth:`LocationEncoder.from_pretrained` (a name loader registered
here) accept the same names. Each entry registers itself in :data:`PRETRAINED` in its own
module, imported here. Converters for peers' checkpoints (``geocsp convert``) register in
:data:`CONVERTERS` (:mod:`geocsp.pretrained.peers`).
"""

from __future__ import annotations

from geocsp.nets import (
    LocationEncoder,  # re-exported: from_pretrained knows names once this is imported
)
from geocsp.pretrained import geoclip as _geoclip  # noqa: F401  (registers "geoclip")
from geocsp.pretrained import peers as _peers  # noqa: F401  (registers satclip, sinr, csp)
from geocsp.pretrained.convert import CONVERTERS, convert_checkpoint, read_checkpoint
from geocsp.pretrained.registry import (
    PREFIX,
    PRETRAINED,
    ModelCard,
    PretrainedModel,
    cache_path,
    convert,
    load,
    model_overrides,
    package_weights,
    pretrained_name,
    pretrained_rows,
    sha256_file,
)

__all__ = [
    "CONVERTERS",
    "PREFIX",
    "PRETRAINED",
    "LocationEncoder",
    "ModelCard",
    "PretrainedModel",
    "cache_path",
    "convert",
    "convert_checkpoint",
    "load",
    "model_overrides",
    "package_weights",
    "pretrained_name",
    "pretrained_rows",
    "read_checkpoint",
    "sha256_file",
]
