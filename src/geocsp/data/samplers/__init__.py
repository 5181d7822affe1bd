"""Samplers: random (negative) locations and the row indices of each epoch (spec §4.6).

- :mod:`geocsp.data.samplers.location`: seeded location samplers, registry
  ``LOCATION_SAMPLERS`` (``sphere``, ``land``, ``box``, ``sphericalold``).
- :mod:`geocsp.data.samplers.epoch`: :class:`ShuffleSampler` and
  :class:`ClassBalancedSampler`, split across distributed ranks.
"""

from __future__ import annotations

from geocsp.data.samplers.epoch import ClassBalancedSampler, ShuffleSampler
from geocsp.data.samplers.location import (
    LOCATION_SAMPLERS,
    MAX_ROUNDS,
    WORLD,
    BBox,
    BBoxConfig,
    BoxSampler,
    BoxSamplerConfig,
    LandSampler,
    LandSamplerConfig,
    LocationSampler,
    MaskFn,
    SphereSampler,
    SphereSamplerConfig,
    SphericalOldConfig,
    SphericalOldSampler,
    check_bbox,
    create_location_sampler,
    list_location_samplers,
    sphere_uniform,
)

__all__ = [
    "LOCATION_SAMPLERS",
    "MAX_ROUNDS",
    "WORLD",
    "BBox",
    "BBoxConfig",
    "BoxSampler",
    "BoxSamplerConfig",
    "ClassBalancedSampler",
    "LandSampler",
    "LandSamplerConfig",
    "LocationSampler",
    "MaskFn",
    "ShuffleSampler",
    "SphereSampler",
    "SphereSamplerConfig",
    "SphericalOldConfig",
    "SphericalOldSampler",
    "check_bbox",
    "create_location_sampler",
    "list_location_samplers",
    "sphere_uniform",
]
