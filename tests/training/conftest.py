"""Fixtures of the training tests: one small GeoWorld per session, single-threaded torch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from geocsp.prior import GeoPrior
from geocsp.training import FinetuneConfig, finetune, resolve_config


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


@pytest.fixture(scope="session")
def ft_run(dataset, tiny: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-epoch fine-tune run (10 % labels) on the small world."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("ev") / "ft"
    cfg = resolve_config(FinetuneConfig, overrides=[*tiny, "data.epochs=3", "ratio=0.1"])
    finetune(cfg, dataset, run)
    return run


def _numpy_loc_probs(run: Path, lonlat: np.ndarray) -> np.ndarray:
    """sigmoid(T e(x)) in float64 from the saved weights (encoder in eval mode)."""
    prior = GeoPrior.from_pretrained(run / "prior")
    with torch.no_grad():
        emb = prior.encoder(torch.as_tensor(lonlat, dtype=torch.float32)).double().numpy()
    t = prior.classifier.weight.detach().double().numpy()
    return 1.0 / (1.0 + np.exp(-(emb @ t.T)))


@pytest.fixture(scope="session")
def numpy_loc_probs() -> Callable[[Path, np.ndarray], np.ndarray]:
    """sigmoid(T e(x)) in float64 from a run's saved weights (an independent reference)."""
    return _numpy_loc_probs
