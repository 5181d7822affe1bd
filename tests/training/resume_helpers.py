"""Shared by tests that check a fine-tuning run resumed after an interruption equals an uninterrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import geocsp.training.loop as loop
from geocsp.data import GeoDataset
from geocsp.training import FinetuneConfig, finetune


def interrupted_and_full(cfg: FinetuneConfig, world: GeoDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         die_at: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics of ``tmp_path/full`` (uninterrupted) and ``tmp_path/cut`` (killed at epoch ``die_at``, resumed)."""
    full = finetune(cfg, world, tmp_path / "full")
    real = loop.run_epoch

    def dying(spec: loop.LoopSpec, epoch: int) -> dict[str, Any]:
        if epoch == die_at:
            raise KeyboardInterrupt
        return real(spec, epoch)

    monkeypatch.setattr(loop, "run_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, world, tmp_path / "cut")
    monkeypatch.setattr(loop, "run_epoch", real)
    return full, finetune(cfg, world, tmp_path / "cut")
