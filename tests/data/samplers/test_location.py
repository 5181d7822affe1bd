"""Location samplers: distributions, reference parity, land mask, seeds and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geocsp.data.samplers.location import (
    LOCATION_SAMPLERS,
    LandSampler,
    create_location_sampler,
    list_location_samplers,
)
from geocsp.errors import ConfigError

N = 20_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def within_3_sigma(value: float, expected: float, var: float, n: int) -> bool:
    return abs(value - expected) <= 3.0 * math.sqrt(var / n)


@pytest.fixture(scope="module")
def land() -> LandSampler:
    return create_location_sampler("land")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def globe():
    from global_land_mask import globe

    return globe


def test_registry() -> None:
    assert list_location_samplers() == ["sphere", "box", "sphericalold", "land"]
    assert LOCATION_SAMPLERS.canonical("SphericalOld") == "sphericalold"
    with pytest.raises(
        ConfigError, match="unknown location sampler 'spherical'; did you mean 'sphericalold'"
    ):
        create_location_sampler("spherical")


@pytest.mark.parametrize("name", ["sphere", "box", "sphericalold"])
def test_shape_range_dtype_and_seed(name: str) -> None:
    s = create_location_sampler(name)
    a = s.sample(500, gen(1), device="cpu")
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert (a[:, 0].abs() <= 180).all() and (a[:, 1].abs() <= 90).all()
    assert torch.equal(a, s.sample(500, gen(1)))
    assert not torch.equal(a, s.sample(500, gen(2)))
    assert s.sample(0, gen()).shape == (0, 2)


def test_sphere_is_area_uniform() -> None:
    x = create_location_sampler("sphere").sample(N, gen()).double()
    lat = torch.deg2rad(x[:, 1])
    assert within_3_sigma(float(torch.sin(lat).mean()), 0.0, 1.0 / 3.0, N)  # sin φ ~ U(-1, 1)
    frac = float((x[:, 1].abs() < 30).double().mean())
    assert within_3_sigma(frac, 0.5, 0.25, N)  # area fraction of |φ| < 30° is sin 30° = 0.5
    assert within_3_sigma(float(x[:, 0].mean()), 0.0, 180.0**2 / 3.0, N)


def test_box_is_uniform_in_lonlat_and_not_equal_area() -> None:
    x = create_location_sampler("box").sample(N, gen()).double()
    frac = float((x[:, 1].abs() < 30).double().mean())
    p = 60.0 / 180.0
    assert within_3_sigma(frac, p, p * (1 - p), N)


def test_box_and_sphere_bbox_across_antimeridian() -> None:
    for name in ("box", "sphere"):
        x = create_location_sampler(name, bbox=(170, -10, -170, 10)).sample(2000, gen())
        assert ((x[:, 0] >= 170) | (x[:, 0] < -170)).all()
        assert (x[:, 0] >= 170).any() and (x[:, 0] < -170).any()
        assert (x[:, 1].abs() <= 10).all()


def test_sphericalold_matches_reference_formula() -> None:
    x = create_location_sampler("sphericalold").sample(1000, gen(5)).double().numpy()
    r = (torch.rand(1000, 3, generator=gen(5)) * 2 - 1).double().numpy()  # the reference draw
    u, t = r[:, 0], r[:, 1]
    theta = np.pi * (t + 1.0)
    want = np.stack(
        [180 * np.sqrt(1 - u**2) * np.cos(theta), 90 * np.sqrt(1 - u**2) * np.sin(theta)], 1
    )
    np.testing.assert_allclose(x, want, atol=1e-4)


def test_sphericalold_is_biased_inside_the_ellipse() -> None:
    x = create_location_sampler("sphericalold").sample(N, gen()).double()
    rho2 = (x[:, 0] / 180) ** 2 + (x[:, 1] / 90) ** 2
    assert (rho2 <= 1 + 1e-5).all()
    corners = (x[:, 0].abs() > 150) & (x[:, 1].abs() > 70)  # e.g. (±180, ±80)
    assert not corners.any()
    # (lon/180, lat/90) is the planar projection of a sphere-uniform point:
    # P(rho² <= 3/4) = 1 - sqrt(1 - 3/4) = 0.5
    assert within_3_sigma(float((rho2 <= 0.75).double().mean()), 0.5, 0.25, N)


def test_mask_fn_hook_restricts_samples() -> None:
    s = create_location_sampler("sphere", mask_fn=lambda p: p[:, 0] > 0)
    x = s.sample(3000, gen())
    assert x.shape == (3000, 2) and (x[:, 0] > 0).all()
    assert torch.equal(x, s.sample(3000, gen()))


def test_rejection_gives_up_on_an_empty_region() -> None:
    s = create_location_sampler("box", mask_fn=lambda p: torch.zeros(len(p), dtype=torch.bool))
    with pytest.raises(ConfigError, match="accepted only 0 of 1 locations after 100 rounds"):
        s.sample(1, gen())


# --------------------------------------------------------------------------- land

KNOWN = torch.tensor([[11.88, 43.46], [2.35, 48.86], [20.0, 20.0], [-30.0, 0.0], [-150.0, -30.0], [170.0, 45.0]])
KNOWN_LAND = [True, True, True, False, False, False]  # Arezzo, Paris, Sahara; Atlantic, Pacific x2


def test_land_sampler_known_points_and_samples(land: LandSampler) -> None:
    assert land.is_land(KNOWN).tolist() == KNOWN_LAND
    x = land.sample(3000, gen(3))
    assert land.is_land(x).all()
    assert torch.equal(land.sample(100, gen(3)), land.sample(100, gen(3)))
    # sphere-uniform proposals, so both hemispheres and Antarctica appear
    assert (x[:, 1] < -60).any() and (x[:, 1] > 45).any()


def test_land_bbox(land: LandSampler) -> None:
    s = create_location_sampler("land", bbox=(-10, 35, 30, 60))
    x = s.sample(1000, gen()).double().numpy()
    assert ((x[:, 0] >= -10) & (x[:, 0] <= 30) & (x[:, 1] >= 35) & (x[:, 1] <= 60)).all()
    assert land.is_land(torch.from_numpy(x)).all()
    # area-uniform inside the box up to land: P(lat < 47.5) is near sin-weighted half
    assert 0.3 < float((x[:, 1] < 47.5).mean()) < 0.7


def test_land_bbox_without_land_fails_clearly() -> None:
    s = create_location_sampler("land", bbox=(-150, -40, -140, -30))  # open Pacific
    with pytest.raises(ConfigError, match="almost\\) no area"):
        s.sample(10, gen())


def test_too_many_locations_are_not_blamed_on_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request beyond MAX_ROUNDS full rounds said the region had no area (sdm --background-sample 1e12)."""
    from geocsp.data.samplers import location

    monkeypatch.setattr(location, "_MAX_BATCH", 16)  # 100 rounds x 16 proposals < 5,000
    s = create_location_sampler("land", bbox=(-10, 35, 30, 60))
    with pytest.raises(ConfigError, match=r"accepted only \d+ of 5000 locations after 100 rounds; each round "
                                          r"proposes at most 16; ask for fewer"):
        s.sample(5000, gen())


@pytest.mark.slow
def test_land_is_bit_exact_with_package(land: LandSampler, globe) -> None:
    pts = create_location_sampler("sphere").sample(20_000, gen(4))
    mine = land.is_land(pts).numpy()
    ref = globe.is_land(pts[:, 1].double().numpy(), pts[:, 0].double().numpy())
    np.testing.assert_array_equal(mine, ref)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("box", {"bbox": (0, 0, 10)}, "bbox must be"),
        ("box", {"bbox": (-190, 0, 10, 10)}, "longitudes must lie in"),
        ("sphere", {"bbox": (0, 10, 10, 10)}, "min_lat < max_lat"),
        ("sphere", {"bbox": (5, 0, 5, 10)}, "zero longitude width"),
        ("land", {"bbox": (0, 0, 10)}, "land.bbox must be"),
        ("box", {"bbx": (0, 0, 1, 1)}, "unknown config key 'box.bbx'"),
    ],
)
def test_config_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_location_sampler(name, **kwargs)


def test_negative_n() -> None:
    with pytest.raises(ConfigError, match="must be >= 0, got -1"):
        create_location_sampler("sphere").sample(-1, gen())
