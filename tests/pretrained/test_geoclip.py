"""GeoCLIP's released location encoder through geocsp equals GeoCLIP's own module.

Runs only where the ``geoclip`` package is installed (``pip install --no-deps geoclip==1.3.0``,
as ``make install-test`` does). GeoCLIP's package ``__init__`` imports its image encoder
(transformers) and trainer; the oracle imports ``geoclip.model.location_encoder`` alone by
standing empty package modules in for ``geoclip`` and ``geoclip.model``.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from tests.pretrained.peers import peer_modules
from torch import nn

from geocsp import checkpoints, pretrained
from geocsp.cli.encoders import encoders
from geocsp.cli.main import cli
from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.pretrained import registry

SPEC = importlib.util.find_spec("geoclip")
pytestmark = pytest.mark.skipif(SPEC is None, reason="the geoclip package is not installed")
N_POINTS = 1000


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        d = tmp_path_factory.mktemp("cache")
        mp.setenv("GEOCSP_CACHE", str(d))
        yield d


@pytest.fixture(scope="module")
def reference() -> Iterator[nn.Module]:
    """GeoCLIP's own ``LocationEncoder`` with its released weights, in eval mode."""
    with peer_modules("geoclip", {}, empty=("model",)):
        yield importlib.import_module("geoclip.model.location_encoder").LocationEncoder().eval()


def _points(dtype: torch.dtype) -> torch.Tensor:
    """(N, 2) lon, lat degrees, uniform on the sphere, seeded."""
    g = torch.Generator().manual_seed(0)
    lon = torch.rand(N_POINTS, generator=g, dtype=torch.float64) * 360.0 - 180.0
    lat = torch.rad2deg(torch.asin(torch.rand(N_POINTS, generator=g, dtype=torch.float64) * 2.0 - 1.0))
    return torch.stack((lon, lat), dim=1).to(dtype)


def test_package_file_is_the_released_one() -> None:
    path = pretrained.package_weights("geoclip")
    assert path is not None
    assert pretrained.sha256_file(path) == pretrained.PRETRAINED.get("geoclip").obj.card.sha256


@pytest.mark.usefixtures("cache")
def test_conversion_does_not_import_geoclip(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in [k for k in sys.modules if k == "geoclip" or k.startswith("geoclip.")]:
        monkeypatch.delitem(sys.modules, k)
    enc = pretrained.load("geoclip")
    assert enc.dim == 512 and not enc.training
    assert not any(k == "geoclip" or k.startswith("geoclip.") for k in sys.modules)


@pytest.mark.usefixtures("cache")
def test_equals_geoclip_in_float64(reference: nn.Module) -> None:
    ours = checkpoints.load_encoder("geoclip").double()
    ref = reference.double()
    lonlat = _points(torch.float64)
    with torch.no_grad():
        # GeoCLIP takes (lat, lon) and sums its branches into a float32 buffer
        expected = ref(lonlat[:, [1, 0]]).double()
        got = ours(lonlat)
    assert got.shape == (N_POINTS, 512)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.usefixtures("cache")
def test_equals_geoclip_in_float32(reference: nn.Module) -> None:
    """float32 resolves the σ = 256 branch's phases (up to ~5e3 rad) only to ~5e-4 rad, so
    the two agree to 1e-5 only because geocsp rounds in GeoCLIP's order (encoders/fourier.py)."""
    ours = pretrained.load("geoclip")
    ref = reference.float()
    lonlat = _points(torch.float32)
    with torch.no_grad():
        got = ours(lonlat)
        torch.testing.assert_close(got, ref(lonlat[:, [1, 0]]), rtol=0, atol=1e-5)
    assert got.dtype == torch.float32


def test_loads_from_the_cache_without_the_release(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = pretrained.load("geoclip")
    assert (pretrained.cache_path("geoclip") / "model.safetensors").is_file()
    assert pretrained.cache_path("geoclip").parent == cache / "pretrained"

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the released file was read again")

    monkeypatch.setattr(registry.torch, "load", refuse)
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    again = pretrained.load("geoclip")
    for k, v in first.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    rows = CliRunner().invoke(encoders, ["--pretrained", "--json"])
    assert '"status": "cached"' in rows.output


def test_explicit_weights_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCSP_CACHE", str(tmp_path / "cache"))
    src = pretrained.package_weights("geoclip")
    assert src is not None
    copy = tmp_path / "weights.pth"
    shutil.copyfile(src, copy)
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    enc = pretrained.load("geoclip", weights=copy)
    assert enc.config.encoder == "geoclip" and enc.config.network == "multibranch"


@pytest.mark.usefixtures("cache")
def test_embed_cli_with_encoder_name(tmp_path: Path) -> None:
    pts = tmp_path / "pts.csv"
    pts.write_text("lon,lat\n2.35,48.85\n-74.0,40.7\n151.2,-33.9\n")
    out = tmp_path / "e.parquet"
    res = CliRunner().invoke(cli, ["embed", "--encoder", "geoclip", str(pts), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    assert df.shape == (3, 2 + 512)
    enc = pretrained.load("geoclip")
    with torch.no_grad():
        expected = enc(torch.tensor(df[["lon", "lat"]].to_numpy(), dtype=torch.float32))
    got = torch.tensor(df[[f"e{i}" for i in range(512)]].to_numpy(), dtype=torch.float32)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.usefixtures("cache")
def test_location_encoder_from_pretrained_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = LocationEncoder.from_pretrained("geoclip")
    ref = pretrained.load("geoclip")
    assert enc.dim == 512 and not enc.training
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in enc.state_dict().items())
    # an existing directory of that name wins over the pretrained name
    monkeypatch.chdir(tmp_path)
    small = LocationEncoder(LocationEncoderConfig(encoder="wrap", dim=8))
    small.save_pretrained(tmp_path / "geoclip")
    assert LocationEncoder.from_pretrained("geoclip").dim == 8
    assert LocationEncoder.from_pretrained("pretrained:geoclip").dim == 512
