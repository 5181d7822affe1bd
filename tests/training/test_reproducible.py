"""Same config + same seed (+ same thread count) -> bit-identical pre-training and fine-tuning.

The demo and ``bench paper`` rely on this: a run directory is named by a hash of its
resolved config, so two runs with one config must give one result. The second pipeline
starts from a deliberately disturbed global RNG state (torch, NumPy, ``random``), so any
draw that is not seeded from the run's seed (dropout, negatives, epoch order, the label
subset, the weight init) would show up as a difference.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geocsp.io import load_checkpoint_dir
from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config


def _pipeline(dataset: Any, tiny: list[str], run: Path) -> dict[str, Any]:
    """Pre-train (CSP-MC-BLD, τ0 = 20, shuffled train + unlabeled pairs) then fine-tune at 10 %."""
    pre = resolve_config(PretrainConfig, stage="pretrain",
                         overrides=[*tiny, "data.epochs=2", "objective.args.tau_inbatch=20", "seed=3"])
    pretrain(pre, dataset, run / "pre")
    ft = resolve_config(FinetuneConfig, stage="finetune",
                        overrides=[*tiny, "data.epochs=3", "data.batch_size=128", "ratio=0.1", "seed=3"])
    finetune(ft, dataset, run / "ft", init=run / "pre")
    return {"pre": (run / "pre" / "metrics.json").read_bytes(), "ft": (run / "ft" / "metrics.json").read_bytes()}


def test_repeated_pretrain_finetune_gives_identical_metrics_json(dataset, tiny, tmp_path: Path) -> None:
    first = _pipeline(dataset, tiny, tmp_path / "a")
    torch.manual_seed(12345)  # disturb every global RNG between the two pipelines
    np.random.seed(54321)
    random.seed(7)
    torch.rand(17), np.random.rand(3), random.random()
    second = _pipeline(dataset, tiny, tmp_path / "b")
    assert first == second  # byte-identical metrics.json (fused top-1, nll, ..., train loss)
    assert json.loads(first["ft"])["fused"]["n"] == len(dataset.split("val"))
    for stage, sub in (("pre", "encoder"), ("ft", "prior")):
        wa, _ = load_checkpoint_dir(tmp_path / "a" / stage / sub)
        wb, _ = load_checkpoint_dir(tmp_path / "b" / stage / sub)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), stage
    np.testing.assert_array_equal(np.load(next((tmp_path / "a" / "ft" / "subset").glob("*.npy"))),
                                  np.load(next((tmp_path / "b" / "ft" / "subset").glob("*.npy"))))


def test_a_different_seed_gives_different_metrics(dataset, tiny, tmp_path: Path) -> None:
    """The check above can fail: changing only the seed changes the pre-training result."""
    def run(seed: int) -> bytes:
        cfg = resolve_config(PretrainConfig, stage="pretrain", overrides=[*tiny, "data.epochs=1", f"seed={seed}"])
        pretrain(cfg, dataset, tmp_path / f"s{seed}")
        return (tmp_path / f"s{seed}" / "metrics.json").read_bytes()

    assert run(0) != run(1)
