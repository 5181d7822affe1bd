"""Fixtures of the training tests: one small GeoWorld per session, single-threaded torch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: 1 thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``small`` GeoWorld (seed 0), generated once per session."""
    from geocsp.data import make_world

    torch.set_num_threads(1)
    return make_world("small", seed=0, out=tmp_path_factory.mktemp("world") / "small")


@pytest.fixture(scope="session")
def dataset(world: Path):
    """The loaded small GeoWorld."""
    from geocsp.data import load_dataset

    return load_dataset(world)


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """Overrides making a run take well under a second per epoch on the small world."""
    return [
        "device=cpu", "quiet=true", "model.dim=32", "model.network_args.hidden_dim=64",
        "model.encoder_args.num_scales=8", "data.batch_size=512",
    ]
