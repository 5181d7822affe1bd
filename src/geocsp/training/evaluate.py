"""Evaluation of a fine-tuned prior on a dataset split (spec §6).

:func:`evaluate_split` scores a prior's P(y|x), the split's image probabilities P(y|I) and
their fusion P(y|I) * P(y|x)^beta on the labelled rows; :func:`evaluate` does it for a run
directory and writes the metrics file. Under torchrun each rank scores a shard of the rows
and the metric sums are reduced over ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from geocsp.checkpoints import load_prior
from geocsp.config import from_dict
from geocsp.data import GeoDataset, Split
from geocsp.distributed import evaluate_scores_reduced, shard_rows
from geocsp.errors import DatasetError
from geocsp.evaluation import evaluate_scores, tune_beta
from geocsp.runtime import distributed_active, resolve_device
from geocsp.training.config import EvaluateConfig
from geocsp.training.data import as_dataset
from geocsp.training.inference import location_probs, resolve_probs_key
from geocsp.training.rundir import RunDir, metrics_name, run_ratio


def evaluate_split(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, split: Split,
                   num_classes: int, cfg: EvaluateConfig, ratio: float | None) -> dict[str, Any]:
    """Image / location / fused metrics of a prior on one split's labelled rows.

    Returns:
        ``{"image", "location", "fused"}`` metric dicts plus ``split``, ``probs_key``, ``beta``.

    A split without image-classifier probabilities is evaluated on location alone:
    ``image`` and ``fused`` are then None and ``probs_key`` is None.

    Raises:
        DatasetError: when the split has no labels, or a named probability set is missing.
    """
    if split.labels is None or not (split.labels >= 0).any():
        raise DatasetError(f"split '{split.name}': no labelled rows to evaluate")
    location_only = not split.prob_keys and cfg.probs_key == "auto"
    key = None if location_only else resolve_probs_key(split, cfg.probs_key, ratio)
    rows = np.flatnonzero(split.labels >= 0)
    sharded = cfg.beta != "tune" and distributed_active()  # torchrun: each rank scores a shard
    if sharded:
        rows = shard_rows(rows)
    img: Any
    if key is None:  # uniform P(y|I): fused == location; reported as location only
        img = np.broadcast_to(np.float32(1.0 / num_classes), (len(rows), num_classes))
    else:
        img = split.probs(key, dense=False)[rows]  # sparse / memmap rows: densified per chunk later
    if img.shape[1] != num_classes:
        raise DatasetError(f"split '{split.name}': probabilities '{key}' have {img.shape[1]} classes, the prior {num_classes}")
    device = resolve_device(cfg.device)
    lonlat, has = split.lonlat[rows], split.has_location[rows]
    loc = location_probs(logits_fn, module, lonlat, has, num_classes, cfg.batch_size, device)
    labels = split.labels[rows]
    beta = cfg.beta
    if location_only:
        beta = 1.0
    elif beta == "tune":
        beta = tune_beta(img, loc, labels, has, batch_size=cfg.batch_size, device=device)
    scorer = evaluate_scores_reduced if sharded else evaluate_scores  # reduced: metrics summed over ranks
    metrics: dict[str, Any] = scorer(img, loc, labels, has, beta=float(beta), batch_size=cfg.batch_size,
                                     device=device)
    if location_only:
        metrics = {**metrics, "image": None, "fused": None}
    return {**metrics, "split": split.name, "probs_key": key, "beta": float(beta)}


def evaluate(run_dir: str | Path, data: GeoDataset | str | Path, split: str = "val",
             probs_key: str = "auto", beta: float | str = 1.0, *, batch_size: int = 4096,
             device: str = "auto") -> dict[str, Any]:
    """Evaluate a fine-tuned run and write ``metrics.json`` (``metrics-<split>.json``).

    Args:
        run_dir: a ``geocsp finetune`` run directory.
        data: the dataset (or its directory).
        split: split to evaluate.
        probs_key: image-probability set, or ``auto`` (the run's few-shot ratio if stored).
        beta: exponent of P(y|x) in the fused score, or ``"tune"``.
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...

    Returns:
        ``{"image": m, "location": m, "fused": m, "split", "probs_key", "beta"}`` where each
        ``m`` has ``top1, top3, top5, top10, mrr, nll, ece, n``.

    Raises:
        CheckpointError: when the run has no prior.
        DatasetError: when the split is missing, unlabelled or lacks probabilities.
        ConfigError: on an invalid ``beta`` / ``batch_size``.
    """
    cfg = from_dict(EvaluateConfig, {"split": split, "probs_key": probs_key, "beta": beta,
                                     "batch_size": batch_size, "device": device}, where="evaluate")
    run = RunDir(run_dir)
    prior = load_prior(run.path).to(resolve_device(cfg.device))
    ds = as_dataset(data)
    out = evaluate_split(prior.logits, prior, ds.split(cfg.split), prior.num_classes, cfg, run_ratio(run.path))
    run.write_metrics(out, metrics_name(cfg.split))
    return out
