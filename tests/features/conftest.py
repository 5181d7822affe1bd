"""Fixtures for the feature-extraction tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from featutils import tiny_onnx


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """2 shared cores: more threads are slower and make timings noisy."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def onnx_model(tmp_path: Path) -> Path:
    pytest.importorskip("onnxruntime")
    p = tiny_onnx(tmp_path / "tiny.onnx")
    p.with_suffix(".json").write_text('{"preprocess": {"size": 32, "crop_pct": 0.875}}')
    return p


