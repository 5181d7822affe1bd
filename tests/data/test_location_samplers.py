"""Location samplers: distributions, reference parity, land mask, seeds and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geocsp.data.location_samplers import (
    LOCATION_SAMPLERS,
    LandSampler,
    create_location_sampler,
    list_location_samplers,
)
from geocsp.errors import ConfigError, MissingFileError

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


# --------------------------------------------------------------------------- land, synthetic mask

PIX = 0.5  # synthetic mask pixel, degrees


@pytest.fixture(scope="module")
def mask_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 0.5° ocean mask in the global_land_mask layout: land is lon [0, 30), lat (0, 30],
    plus a 2-of-4-pixel cell at 1° resolution and a lone land pixel."""
    rows, cols = int(180 / PIX), int(360 / PIX)
    ocean = np.ones((rows, cols), dtype=bool)
    ocean[120:180, 360:420] = False  # lat 30..0, lon 0..30
    ocean[20, 100:102] = False  # half of the 1° cell at rows 20-21, cols 100-101
    ocean[40, 200] = False  # a single pixel
    path = tmp_path_factory.mktemp("mask") / "mask.npz"
    np.savez_compressed(
        path, mask=ocean, lat=90.0 - PIX * np.arange(rows), lon=-180.0 + PIX * np.arange(cols)
    )
    return str(path)


def np_is_land(path: str, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """global_land_mask's lookup rule, re-implemented on the synthetic file."""
    z = np.load(path)
    m, la, lo = z["mask"], z["lat"], z["lon"]
    i = ((np.clip(lat, la.min(), la.max()) - la[0]) / (la[1] - la[0])).astype(int)
    j = ((np.clip(lon, lo.min(), lo.max()) - lo[0]) / (lo[1] - lo[0])).astype(int)
    return ~m[i, j]


def test_land_sampler_on_synthetic_mask(mask_file: str) -> None:
    s = create_location_sampler("land", mask_file=mask_file, resolution_deg=PIX)
    x = s.sample(4000, gen()).double().numpy()
    assert np_is_land(mask_file, x[:, 0], x[:, 1]).all()
    big = (x[:, 0] < 30) & (x[:, 0] >= 0) & (x[:, 1] > 0) & (x[:, 1] <= 30)
    assert big.mean() > 0.99
    # area-uniform inside the block: P(lat < 15 | block) = sin 15° / sin 30°
    p = math.sin(math.radians(15)) / math.sin(math.radians(30))
    frac = float((x[big, 1] < 15).mean())
    assert within_3_sigma(frac, p, p * (1 - p), int(big.sum()))
    assert torch.equal(s.sample(50, gen(9)), s.sample(50, gen(9)))


def test_land_cell_rule(mask_file: str) -> None:
    half = torch.tensor([[-129.5, 79.5]])  # centre of the half-land 1° cell
    lone = torch.tensor([[-79.75, 69.75]])  # the lone pixel
    strict = create_location_sampler("land", mask_file=mask_file, resolution_deg=1.0)
    major = create_location_sampler(
        "land", mask_file=mask_file, resolution_deg=1.0, min_land_fraction=0.5
    )
    fine = create_location_sampler("land", mask_file=mask_file, resolution_deg=PIX)
    assert not strict.is_land(half) and major.is_land(half)  # type: ignore[attr-defined]
    assert not major.is_land(lone) and fine.is_land(lone)  # type: ignore[attr-defined]


def test_land_errors(mask_file: str, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"multiple of the 0.5 deg mask pixel"):
        create_location_sampler("land", mask_file=mask_file, resolution_deg=0.7)
    with pytest.raises(ConfigError, match="contains no land"):
        create_location_sampler(
            "land", mask_file=mask_file, resolution_deg=PIX, bbox=(-150, -40, -140, -30)
        )
    with pytest.raises(MissingFileError, match="land mask file not found"):
        create_location_sampler("land", mask_file=str(tmp_path / "none.npz"))


def test_land_bbox_on_synthetic_mask(mask_file: str) -> None:
    s = create_location_sampler(
        "land", mask_file=mask_file, resolution_deg=PIX, bbox=(10, 5, 20, 10)
    )
    x = s.sample(500, gen()).double().numpy()
    assert ((x[:, 0] >= 10) & (x[:, 0] <= 20) & (x[:, 1] >= 5) & (x[:, 1] <= 10)).all()


# --------------------------------------------------------------------------- land, real package (slow)


@pytest.mark.slow
def test_land_samples_are_on_land(land: LandSampler, globe) -> None:
    x = land.sample(5000, gen(3)).double().numpy()
    assert globe.is_land(x[:, 1], x[:, 0]).all()
    assert torch.equal(land.sample(100, gen(3)), land.sample(100, gen(3)))
    # sphere-uniform proposals, so both hemispheres and Antarctica appear
    assert (x[:, 1] < -60).any() and (x[:, 1] > 45).any()


@pytest.mark.slow
def test_land_grid_agrees_with_package(land: LandSampler, globe) -> None:
    pts = create_location_sampler("sphere").sample(20_000, gen(4))
    mine = land.is_land(pts).numpy()
    ref = globe.is_land(pts[:, 1].double().numpy(), pts[:, 0].double().numpy())
    assert not (mine & ~ref).any()  # strict cells: never land where the package says ocean
    assert (mine == ref).mean() > 0.97  # only coastal cells differ


@pytest.mark.slow
def test_land_bbox(globe) -> None:
    s = create_location_sampler("land", bbox=(-10, 35, 30, 60), min_land_fraction=0.5)
    x = s.sample(1000, gen()).double().numpy()
    assert ((x[:, 0] >= -10) & (x[:, 0] <= 30) & (x[:, 1] >= 35) & (x[:, 1] <= 60)).all()
    assert globe.is_land(x[:, 1], x[:, 0]).mean() > 0.97


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("box", {"bbox": (0, 0, 10)}, "bbox must be"),
        ("box", {"bbox": (-190, 0, 10, 10)}, "longitudes must lie in"),
        ("sphere", {"bbox": (0, 10, 10, 10)}, "min_lat < max_lat"),
        ("sphere", {"bbox": (5, 0, 5, 10)}, "zero longitude width"),
        ("land", {"resolution_deg": 0.0}, "resolution_deg must be > 0"),
        ("land", {"min_land_fraction": 0.0}, r"min_land_fraction must be in \(0, 1\]"),
        ("box", {"bbx": (0, 0, 1, 1)}, "unknown config key 'box.bbx'"),
    ],
)
def test_config_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_location_sampler(name, **kwargs)


def test_negative_n() -> None:
    with pytest.raises(ConfigError, match="must be >= 0, got -1"):
        create_location_sampler("sphere").sample(-1, gen())
