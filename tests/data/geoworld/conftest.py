"""Fixtures of the GeoWorld tests (geocsp.data.geoworld)."""

from __future__ import annotations

import pytest

from geocsp.data.dataset import load_dataset
from geocsp.data.geoworld import make_world


@pytest.fixture(scope="package", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the land-mask cache (and any default-path world) out of the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GEOCSP_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="package")
def small(tmp_path_factory: pytest.TempPathFactory):
    path = make_world("small", seed=0, out=tmp_path_factory.mktemp("gw") / "small")
    return path, load_dataset(path)
