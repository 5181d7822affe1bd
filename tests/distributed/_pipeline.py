"""Pre-train + fine-tune + evaluate through ``geocsp.training`` on a tiny dataset, run either
by the 2-rank pool (the real torchrun code path, process group already joined) or by one
process with twice the batch.

The settings make the two comparable *exactly* (up to float32 summation order): dropout 0,
no random-location term in pre-training (``neg_loc_weight=0``) and a fine-tuning loss
without random background locations (``ce``). Then the only randomness is the epoch
permutation, which is global: global batch k of 2 ranks x B is, as a set, batch k of one
process with 2B, and every loss is a mean over the batch rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

N_TRAIN, N_VAL, Q, D = 64, 21, 4, 8


def make_tiny_dataset(out: Path) -> Path:
    """Clustered classes, 64 train rows with features, 21 val rows (2 without a location)."""
    from geocsp.data.dataset import SplitData, write_dataset

    rng = np.random.default_rng(0)
    centres = np.array([[-100.0, 40.0], [20.0, 45.0], [120.0, -25.0], [-60.0, -15.0]])

    def table(n: int, missing: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
        lab = np.arange(n) % Q
        ll = centres[lab] + rng.normal(scale=8.0, size=(n, 2))
        ll[:missing] = np.nan
        names = [f"c{k}" for k in lab]
        return pd.DataFrame({"lon": ll[:, 0], "lat": ll[:, 1], "label": names}), lab

    train, tl = table(N_TRAIN)
    feats = (np.eye(Q)[tl] @ rng.normal(size=(Q, D)) + 0.3 * rng.normal(size=(N_TRAIN, D))).astype(
        np.float32
    )
    val, _ = table(N_VAL, missing=2)
    probs = rng.dirichlet(np.ones(Q), size=N_VAL).astype(np.float32)
    splits = {
        "train": SplitData(train, features=feats),
        "val": SplitData(val, probs={"default": probs}),
    }
    return write_dataset(out, splits, [f"c{k}" for k in range(Q)])


def overrides(stage: str, batch_size: int, epochs: int = 2) -> list[str]:
    """``--set`` strings of the comparable runs (see module docstring)."""
    common = [
        f"data.batch_size={batch_size}",
        f"data.epochs={epochs}",
        "data.sampler=shuffle",
        "device=cpu",
        "quiet=true",
        "seed=3",
        "model.dim=16",
        "model.network_args.hidden_dim=32",
        "model.network_args.dropout=0.0",
    ]
    if stage == "pretrain":
        return [
            *common,
            "data.use_unlabeled=false",
            "objective.name=csp-mc-bld",
            "objective.args.neg_loc_weight=0.0",
            "objective.args.tau_inbatch=0.5",
        ]
    return [*common, "loss.name=ce"]


def run_pipeline(data: str, root: str, batch_size: int, epochs: int = 2) -> dict[str, Any]:
    """pretrain(root/pretrain) then finetune(root/finetune, init=pretrain): their metrics."""
    from geocsp import training

    pre = training.resolve_config(
        training.PretrainConfig, overrides=overrides("pretrain", batch_size, epochs)
    )
    ft = training.resolve_config(
        training.FinetuneConfig, overrides=overrides("finetune", batch_size, epochs)
    )
    pm = training.pretrain(pre, data, Path(root) / "pretrain")
    fm = training.finetune(ft, data, Path(root) / "finetune", init=Path(root) / "pretrain")
    return {"pretrain": pm, "finetune": fm}


def pool_pipeline(
    info: Any, data: str, root: str, batch_size: int, epochs: int = 2
) -> dict[str, Any]:
    """:func:`run_pipeline` on a pool rank (all ranks share ``root``; rank 0 writes)."""
    return run_pipeline(data, root, batch_size, epochs)


def assert_metrics_close(got: dict[str, Any], ref: dict[str, Any], rel: float) -> None:
    """Every numeric leaf of ``ref`` within ``rel`` (ints: equal), same keys."""
    assert got.keys() == ref.keys()
    for key, value in ref.items():
        if isinstance(value, dict):
            assert_metrics_close(got[key], value, rel)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            assert got[key] == value, key
        elif isinstance(value, int):
            assert got[key] == value, key
        elif key not in ("seconds", "samples_per_s"):
            assert got[key] == pytest.approx(value, rel=rel, abs=rel), key


def resume_pretrain(info: Any, data: str, root: str, batch_size: int) -> dict[str, Any]:
    """Rerun the pre-training of :func:`run_pipeline` in ``root/pretrain`` (resumes)."""
    from geocsp import training

    cfg = training.resolve_config(
        training.PretrainConfig, overrides=overrides("pretrain", batch_size)
    )
    return training.pretrain(cfg, data, Path(root) / "pretrain")
