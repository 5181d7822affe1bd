"""Seeded samplers of random (negative) locations, registry ``LOCATION_SAMPLERS`` (spec §4.6).

Every sampler is built as ``Cls(config, mask_fn=None)`` and draws with
``sample(n, generator, device="cpu") -> (n, 2)`` float32 (lon, lat) degrees. All random
numbers come from the given ``torch.Generator`` (on its own device, then moved), so a seed
reproduces the draw on any device.

``mask_fn`` is an optional extra acceptance test, ``(m, 2) float32 degrees -> (m,) bool``
(e.g. "inside this GeoJSON polygon"); candidates it rejects are redrawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from geocsp._registry import Registry
from geocsp.config import from_dict
from geocsp.errors import ConfigError
from geocsp.landmask import is_land_tensor

LOCATION_SAMPLERS: Registry[Any] = Registry("location sampler")
"""Registry of location samplers: ``sphere`` (default), ``land``, ``box``, ``sphericalold``."""

BBox = tuple[float, float, float, float]
WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)
"""(min_lon, min_lat, max_lon, max_lat) of the whole world, degrees."""

MaskFn = Callable[[torch.Tensor], torch.Tensor]

MAX_ROUNDS = 100
"""Rejection rounds before a sampler gives up (the accepted region has ~no area)."""
_MAX_BATCH = 1 << 22


def check_bbox(bbox: BBox, where: str) -> None:
    """Validate a (min_lon, min_lat, max_lon, max_lat) box in degrees.

    ``min_lon > max_lon`` denotes a box crossing the antimeridian.

    Raises:
        ConfigError: on a wrong length, out-of-range values or an empty box.
    """
    if len(bbox) != 4:
        raise ConfigError(
            f"{where}.bbox must be (min_lon, min_lat, max_lon, max_lat), got {bbox!r}"
        )
    lon0, lat0, lon1, lat1 = (float(v) for v in bbox)
    if not (-180.0 <= lon0 <= 180.0 and -180.0 <= lon1 <= 180.0):
        raise ConfigError(f"{where}.bbox longitudes must lie in [-180, 180], got {bbox!r}")
    if not -90.0 <= lat0 < lat1 <= 90.0:
        raise ConfigError(f"{where}.bbox needs -90 <= min_lat < max_lat <= 90, got {bbox!r}")
    if lon0 == lon1:
        raise ConfigError(f"{where}.bbox has zero longitude width: {bbox!r}")


def _uniform(n: int, generator: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    """(n,) float64 uniform draws in [lo, hi) on the generator's device."""
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
    return lo + (hi - lo) * u


def _box_longitudes(n: int, generator: torch.Generator, bbox: BBox) -> torch.Tensor:
    """(n,) longitudes uniform in the box's longitude range (antimeridian-aware), degrees."""
    lon0, lon1 = float(bbox[0]), float(bbox[2])
    if lon0 < lon1:
        return _uniform(n, generator, lon0, lon1)
    lon = _uniform(n, generator, lon0, lon1 + 360.0)
    return torch.remainder(lon + 180.0, 360.0) - 180.0


def sphere_uniform(n: int, generator: torch.Generator, bbox: BBox = WORLD) -> torch.Tensor:
    """Points uniform in area on the sphere, restricted to a lon/lat box.

    lon ~ U(min_lon, max_lon), lat = asin(U(sin min_lat, sin max_lat)); with the whole
    world this is lat = asin(U(-1, 1)).

    Args:
        n: number of points.
        generator: source of randomness.
        bbox: (min_lon, min_lat, max_lon, max_lat) degrees.

    Returns:
        (n, 2) float64 (lon, lat) degrees on the generator's device.
    """
    lon = _box_longitudes(n, generator, bbox)
    s0, s1 = math.sin(math.radians(bbox[1])), math.sin(math.radians(bbox[3]))
    lat = torch.rad2deg(torch.asin(_uniform(n, generator, s0, s1).clamp(-1.0, 1.0)))
    return torch.stack((lon, lat), dim=-1)


class LocationSampler:
    """Base class: proposal draws plus optional rejection by built-in and user predicates.

    Args:
        config: the sampler's frozen config.
        mask_fn: optional acceptance test, (m, 2) float32 degrees -> (m,) bool.
    """

    rejects: bool = False
    """Whether :meth:`accept` can reject candidates (subclasses with a built-in test)."""
    expected_acceptance: float = 1.0

    def __init__(self, config: Any, mask_fn: MaskFn | None = None) -> None:
        self.config = config
        self.mask_fn = mask_fn

    def propose(self, n: int, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        """(n, 2) candidate (lon, lat) degrees on the generator's device."""
        raise NotImplementedError

    def accept(self, lonlat: torch.Tensor) -> torch.Tensor | None:
        """Built-in acceptance test of (m, 2) float32 degrees -> (m,) bool, or None."""
        return None

    def _keep(self, cand: torch.Tensor) -> torch.Tensor | None:
        keep = self.accept(cand)
        if self.mask_fn is not None:
            user = torch.as_tensor(self.mask_fn(cand), dtype=torch.bool, device=cand.device)
            keep = user if keep is None else keep & user
        return keep

    def sample(self, n: int, generator: torch.Generator, device: Any = "cpu") -> torch.Tensor:
        """Draw ``n`` locations.

        Args:
            n: number of locations (>= 0).
            generator: source of randomness; draws happen on its device.
            device: device of the returned tensor.

        Returns:
            (n, 2) float32 (lon, lat) degrees.

        Raises:
            ConfigError: if ``n`` is negative or rejection sampling cannot find ``n``
                accepted points within :data:`MAX_ROUNDS` rounds.
        """
        if n < 0:
            raise ConfigError(f"number of locations to sample must be >= 0, got {n}")
        if not self.rejects and self.mask_fn is None:
            return self.propose(n, generator).to(torch.float32).to(device)
        return self._rejection(n, generator).to(device)

    def _rejection(self, n: int, generator: torch.Generator) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        have, proposed = 0, 0
        rate = self.expected_acceptance
        for _ in range(MAX_ROUNDS):
            if have >= n:
                break
            m = min(_MAX_BATCH, math.ceil(1.2 * (n - have) / max(rate, 1e-4)) + 64)
            cand = self.propose(m, generator).to(torch.float32)
            keep = self._keep(cand)
            good = cand if keep is None else cand[keep]
            parts.append(good)
            have += good.shape[0]
            proposed += m
            rate = have / proposed
        if have < n:
            why = ("the allowed region has (almost) no area" if have / max(proposed, 1) < 1e-3
                   else f"each round proposes at most {_MAX_BATCH:,}; ask for fewer")
            raise ConfigError(f"{type(self).__name__}: accepted only {have} of {n} locations after "
                              f"{MAX_ROUNDS} rounds; {why}")
        empty = torch.empty(0, 2, dtype=torch.float32, device=generator.device)
        return torch.cat([empty, *parts])[:n]


@dataclass(frozen=True)
class BBoxConfig:
    """The config of a sampler whose only hyper-parameter is its box.

    Args:
        bbox: (min_lon, min_lat, max_lon, max_lat) degrees; the whole world by default.
    """

    where: ClassVar[str] = "sampler"
    """The sampler name that errors start with."""

    bbox: BBox = WORLD

    def __post_init__(self) -> None:
        check_bbox(self.bbox, self.where)


@dataclass(frozen=True)
class SphereSamplerConfig(BBoxConfig):
    """Config of :class:`SphereSampler` (field as :class:`BBoxConfig`)."""

    where: ClassVar[str] = "sphere"


@LOCATION_SAMPLERS.register("sphere", aliases=("uniform_sphere",), config=SphereSamplerConfig)
class SphereSampler(LocationSampler):
    """Uniform on the sphere (equal area): lon ~ U(-180, 180), lat = asin(U(-1, 1))."""

    def propose(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 2) area-uniform (lon, lat) degrees inside ``config.bbox``."""
        return sphere_uniform(n, generator, self.config.bbox)


@dataclass(frozen=True)
class BoxSamplerConfig(BBoxConfig):
    """Config of :class:`BoxSampler` (field as :class:`BBoxConfig`)."""

    where: ClassVar[str] = "box"


@LOCATION_SAMPLERS.register("box", aliases=("uniform",), config=BoxSamplerConfig)
class BoxSampler(LocationSampler):
    """Uniform in the lon/lat plane of a box (not equal area; over-samples the poles)."""

    def propose(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 2) (lon, lat) degrees uniform in the lon/lat rectangle ``config.bbox``."""
        lon = _box_longitudes(n, generator, self.config.bbox)
        lat = _uniform(n, generator, float(self.config.bbox[1]), float(self.config.bbox[3]))
        return torch.stack((lon, lat), dim=-1)


@dataclass(frozen=True)
class SphericalOldConfig:
    """Config of :class:`SphericalOldSampler` (no hyper-parameters)."""


@LOCATION_SAMPLERS.register("sphericalold", config=SphericalOldConfig)
class SphericalOldSampler(LocationSampler):
    """Reference ``sphericalold`` negatives (spec §4.6): biased, inside the lon/lat ellipse.

    Draws ``r = U(-1, 1)`` of shape (n, 3) in float32 as the reference does (column 2, the
    reference's time channel, is unused), u = r[:, 0], t = r[:, 1], θ = π(t + 1),
    lon = 180·√(1−u²)·cos θ, lat = 90·√(1−u²)·sin θ. (lon/180, lat/90) is the planar
    projection of a sphere-uniform point, so samples never leave the ellipse
    (lon/180)² + (lat/90)² ≤ 1 and are *not* uniform on the sphere.
    """

    def propose(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 2) float32 (lon, lat) degrees inside the ellipse."""
        r = torch.rand(n, 3, generator=generator, device=generator.device) * 2 - 1
        u, t = r[:, 0], r[:, 1]
        theta = math.pi * (t + 1)
        rad = torch.sqrt((1.0 - u**2).clamp_min(0.0))
        return torch.stack((180.0 * rad * torch.cos(theta), 90.0 * rad * torch.sin(theta)), dim=-1)


# --------------------------------------------------------------------------- land


@dataclass(frozen=True)
class LandSamplerConfig(BBoxConfig):
    """Config of :class:`LandSampler` (field as :class:`BBoxConfig`)."""

    where: ClassVar[str] = "land"


@LOCATION_SAMPLERS.register("land", config=LandSamplerConfig)
class LandSampler(LocationSampler):
    """Uniform on land: sphere-uniform proposals in ``bbox`` kept where the land mask says land.

    The mask is :mod:`geocsp.landmask` (GLOBE 1 km via ``global-land-mask``; lakes count
    as land), so every sample is on land exactly as ``global_land_mask.globe.is_land``
    says. A box with no land fails after :data:`MAX_ROUNDS` rejection rounds with a
    ConfigError.
    """

    rejects = True
    expected_acceptance = 0.3

    def is_land(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(m,) bool: whether each (m, 2) (lon, lat) degree point lies on land."""
        return is_land_tensor(lonlat)

    def propose(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 2) area-uniform (lon, lat) degrees inside ``config.bbox``."""
        return sphere_uniform(n, generator, self.config.bbox)

    def accept(self, lonlat: torch.Tensor) -> torch.Tensor:
        """(m,) bool land test of (m, 2) float32 degrees."""
        return self.is_land(lonlat)


def create_location_sampler(
    name: str = "sphere", mask_fn: MaskFn | None = None, **overrides: Any
) -> LocationSampler:
    """Build a registered location sampler.

    Args:
        name: sampler name (case-insensitive): ``sphere``, ``land``, ``box``, ``sphericalold``.
        mask_fn: optional extra acceptance test, (m, 2) float32 degrees -> (m,) bool.
        **overrides: fields of the sampler's config (e.g. ``bbox``).

    Returns:
        The sampler.

    Raises:
        ConfigError: on an unknown name, an unknown config key or an invalid value.
    """
    entry = LOCATION_SAMPLERS.get(name)
    cfg: Any = from_dict(entry.config, overrides, where=entry.name)  # type: ignore[arg-type]
    return entry.obj(cfg, mask_fn=mask_fn)


def list_location_samplers() -> list[str]:
    """Canonical names of the registered location samplers."""
    return LOCATION_SAMPLERS.names()
