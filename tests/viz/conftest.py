"""Tiny runs for the interactive map's tests (tests/viz/webruns.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.viz.webruns import make_prior_run, make_sdm_run


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sdm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sdm_run(tmp_path_factory.mktemp("web") / "sdm-run")


@pytest.fixture(scope="session")
def prior_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prior_run(tmp_path_factory.mktemp("web") / "prior-run")
