"""Shared test fixtures."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "agg")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _offline_torch_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point torch hub / HF caches at a temp dir so no test touches a real cache."""
    d = tmp_path_factory.getbasetemp() / "hub"
    monkeypatch.setenv("TORCH_HOME", str(d))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process: CI runs two xdist workers on two cores, and
    oversubscribed threads make the tiny models in tests many times slower."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # A test process started in the background by a non-interactive shell (`cmd &`, nohup)
    # inherits SIGINT ignored, so Ctrl-C faults would never fire; the interruption tests send it.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


# test-only torchvision stub used by the timm tests: not a test module
collect_ignore_glob = ["features/_stubs/*"]
