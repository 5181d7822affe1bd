"""Evaluation of a fine-tuned prior on a dataset split (spec §6).

:func:`evaluate_split` scores a prior's P(y|x), the split's image probabilities P(y|I) and
their fusions on the labelled rows: the paper's P(y|I) * P(y|x)^beta (``fused``) and the
calibrated fusion fitted on the ``calib`` split, or cross-fitted without one
(``fused_calibrated``, docs/fusion.md, docs/protocol.md); :func:`evaluate` does it for a run
directory and writes a file of its own (``--out``, or ``RUN/eval-<split>-<dataset>-<probs>.json``),
never the run's training-time ``metrics.json``, and never over an existing file unless asked.
Under torchrun each rank scores a shard of the rows and the metric sums are reduced over ranks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from geocsp.checkpoints import load_prior
from geocsp.config import from_dict
from geocsp.data import GeoDataset, Split
from geocsp.data.tables import refuse_existing
from geocsp.distributed import shard_rows
from geocsp.distributed.context import all_reduce_sum
from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation import evaluate_scores, tune_beta
from geocsp.evaluation.calibration import crossfit_fusion, fit_fusion, hurts_warning
from geocsp.evaluation.protocol import evaluate_fused
from geocsp.io import atomic_write_json
from geocsp.prior.fusion import Fusion
from geocsp.runtime import distributed_active, is_main_process, resolve_device
from geocsp.training.config import EvaluateConfig
from geocsp.training.data import as_dataset
from geocsp.training.inference import check_same_classes, location_probs, resolve_probs_key
from geocsp.training.rundir import RunDir, run_ratio


def eval_probs_key(split: Split, cfg: EvaluateConfig, ratio: float | None) -> str | None:
    """The image-probability set an evaluation uses; None: location only (``auto``, none stored)."""
    if not split.prob_keys and cfg.probs_key == "auto":
        return None
    return resolve_probs_key(split, cfg.probs_key, ratio)


def eval_file_name(split: str, dataset: str | Path, probs_key: str | None) -> str:
    """``eval-<split>-<dataset dir name>-<probs key or "location">.json`` (safe characters only).

    Args:
        split: the evaluated split.
        dataset: the dataset directory.
        probs_key: the image-probability set, None for a location-only evaluation.

    Returns:
        The file name (never ``metrics.json``, the run's training-time metrics).
    """
    parts = (split, Path(dataset).name or "dataset", probs_key or "location")
    return "eval-" + "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts) + ".json"


def _labelled_rows(split: Split, what: str) -> np.ndarray:
    """Indices of the split's labelled rows.

    Raises:
        DatasetError: when there are none.
    """
    if split.labels is None or not (split.labels >= 0).any():
        raise DatasetError(f"split '{split.name}': no labelled rows {what}")
    return np.flatnonzero(split.labels >= 0)


def _scored_rows(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, split: Split, rows: np.ndarray,
                 key: str | None, num_classes: int, batch_size: int, device: Any) -> tuple[Any, Any, Any, Any]:
    """``(img, loc, labels, has)`` of ``rows``: P(y|I) under ``key`` (uniform for None) and P(y|x).

    Raises:
        DatasetError: when the probabilities are missing or have another number of classes.
    """
    img: Any
    if key is None:  # uniform P(y|I): fused == location; reported as location only
        img = np.broadcast_to(np.float32(1.0 / num_classes), (len(rows), num_classes))
    else:
        img = split.probs(key, dense=False)[rows]  # sparse / memmap rows: densified per chunk later
    if img.shape[1] != num_classes:
        raise DatasetError(f"split '{split.name}': probabilities '{key}' have {img.shape[1]} classes, the prior {num_classes}")
    lonlat, has = split.lonlat[rows], split.has_location[rows]
    loc = location_probs(logits_fn, module, lonlat, has, num_classes, batch_size, device)
    return img, loc, split.labels[rows] if split.labels is not None else None, has


def _fusion_info(fusion: Fusion, beta: float, fitted_on: str, n: int, image_top1: float,
                 paper_top1: float, **extra: Any) -> dict[str, Any]:
    """The ``fusion`` entry of the metrics (see :func:`evaluate_split`)."""
    return {"paper": {"beta": float(beta)}, "calibrated": fusion.to_dict(), "fitted_on": fitted_on,
            "calib_rows": int(n), "image_only_top1_calib": float(image_top1),
            "paper_top1_calib": float(paper_top1), "hurts": bool(paper_top1 < image_top1),
            "warning": hurts_warning(image_top1, paper_top1, n, fusion, fitted_on), **extra}


def evaluate_split(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, split: Split,
                   num_classes: int, cfg: EvaluateConfig, ratio: float | None,
                   calib: Split | None = None) -> dict[str, Any]:
    """Image / location / fused (paper and calibrated) metrics of a prior on one split's labelled rows.

    The calibrated fusion ``log P(y|I) + β log(ε + (1 − ε) P(y|x))`` (docs/fusion.md) is
    fitted on ``calib`` (its labelled rows, image probabilities under the same key as the
    reported split) and never on the reported rows; without ``calib`` each reported row is
    scored with (β, ε) fitted on the other ``cfg.crossfit_folds`` − 1 folds
    (:func:`~geocsp.evaluation.calibration.crossfit_fusion`; docs/protocol.md). ``fused`` is
    the paper's product with ``cfg.beta`` exactly as before; ``beta="tune"`` tunes β on
    ``calib`` and needs one.

    Args:
        logits_fn: (B, 2) lon/lat degrees -> (B, Q) logits of the prior.
        module: the module holding the prior (switched to eval mode while scoring).
        split: the reported split.
        num_classes: Q.
        cfg: the evaluation settings.
        ratio: the run's label ratio λ (selects ``ratio{λ:.3f}`` probabilities under ``auto``).
        calib: the calibration split, or None (cross-fitting on ``split``).

    Returns:
        ``{"image", "location", "fused", "fused_calibrated"}`` metric dicts (``top1 … n``),
        ``fusion`` = ``{"paper": {"beta"}, "calibrated": {"kind", "beta", "eps"}, "fitted_on":
        "calib" | "crossfit-<split>-k<K>", "calib_rows", "image_only_top1_calib",
        "paper_top1_calib", "hurts", "warning"}`` (cross-fitting adds ``"folds"``, the (β, ε)
        of each fold; ``calibrated`` is then the fit on all rows, for new data), plus
        ``split``, ``probs_key``, ``beta``. A split without image-classifier probabilities is
        evaluated on location alone: ``image``, ``fused``, ``fused_calibrated`` and ``fusion``
        are then None and ``probs_key`` is None.

    Raises:
        DatasetError: when the split (or ``calib``) has no labelled rows, or a named
            probability set is missing from either.
        ConfigError: ``beta="tune"`` without a ``calib`` split.
    """
    rows = _labelled_rows(split, "to evaluate")
    key = eval_probs_key(split, cfg, ratio)
    device = resolve_device(cfg.device)
    if key is None:
        img, loc, labels, has = _scored_rows(logits_fn, module, split, rows, None, num_classes,
                                             cfg.batch_size, device)
        metrics: dict[str, Any] = evaluate_scores(img, loc, labels, has, beta=1.0, batch_size=cfg.batch_size,
                                                  device=device)
        return {**metrics, "image": None, "fused": None, "fused_calibrated": None, "fusion": None,
                "split": split.name, "probs_key": None, "beta": 1.0}
    if cfg.beta == "tune" and calib is None:
        raise ConfigError(f"beta=tune needs a calib split ('{cfg.calib_split}' is not in the dataset); use the "
                          "calibrated fusion reported as fused_calibrated instead")
    sharded = calib is not None and distributed_active()  # torchrun: each rank scores a shard
    if sharded:
        rows = shard_rows(rows)
    img, loc, labels, has = _scored_rows(logits_fn, module, split, rows, key, num_classes, cfg.batch_size, device)
    if calib is not None:
        c_rows = _labelled_rows(calib, "to fit the fusion on")
        if key not in calib.prob_keys:
            raise DatasetError(f"split '{calib.name}' has no image probabilities '{key}' (the key of split "
                               f"'{split.name}'; stored: {', '.join(calib.prob_keys)}); add them or remove the split")
        cal = _scored_rows(logits_fn, module, calib, c_rows, key, num_classes, cfg.batch_size, device)
        fit = fit_fusion(*cal, batch_size=cfg.batch_size, device=device)
        beta = tune_beta(*cal, batch_size=cfg.batch_size, device=device) if cfg.beta == "tune" else float(cfg.beta)
        metrics = evaluate_fused(img, loc, labels, has, {"fused": Fusion("paper", beta), "fused_calibrated": fit.fusion},
                                 batch_size=cfg.batch_size, device=device, reduce=all_reduce_sum if sharded else None)
        info = _fusion_info(fit.fusion, beta, "calib", fit.n, fit.image_only_top1, fit.paper_top1)
    else:
        beta = float(cfg.beta)
        metrics = evaluate_fused(img, loc, labels, has, {"fused": Fusion("paper", beta)},
                                 batch_size=cfg.batch_size, device=device)
        k = min(cfg.crossfit_folds, len(rows))
        cross = crossfit_fusion(img, loc, labels, has, k=k, seed=0, batch_size=cfg.batch_size, device=device)
        whole = fit_fusion(img, loc, labels, has, batch_size=cfg.batch_size, device=device)
        metrics["fused_calibrated"] = cross.metrics
        info = _fusion_info(whole.fusion, beta, f"crossfit-{split.name}-k{k}", len(rows), cross.image_only_top1,
                            cross.paper_top1, folds=[f.fusion.to_dict() for f in cross.folds])
    return {**metrics, "fusion": info, "split": split.name, "probs_key": key, "beta": float(beta)}


def calib_split(ds: GeoDataset, cfg: EvaluateConfig) -> Split | None:
    """The dataset's calibration split (``cfg.calib_split``), or None when absent or reported.

    Args:
        ds: the dataset.
        cfg: the evaluation settings.

    Returns:
        The split, or None.
    """
    if cfg.calib_split == cfg.split or cfg.calib_split not in ds:
        return None
    return ds.split(cfg.calib_split)


def evaluate(run_dir: str | Path, data: GeoDataset | str | Path, split: str = "val",
             probs_key: str = "auto", beta: float | str = 1.0, *, batch_size: int = 4096,
             device: str = "auto", out: str | Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Evaluate a fine-tuned run on a dataset and write the metrics to a file of their own.

    The run's ``metrics.json`` (written by fine-tuning) is never touched. The output is
    checked before any work: an existing file is refused unless ``overwrite``.

    Args:
        run_dir: a ``geocsp finetune`` run directory.
        data: the dataset (or its directory).
        split: split to evaluate.
        probs_key: image-probability set, or ``auto`` (the run's few-shot ratio if stored).
        beta: exponent of P(y|x) in the paper's fused score, or ``"tune"`` (on the dataset's
            ``calib`` split; ConfigError without one).
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...
        out: the JSON file to write; None: ``RUN/eval-<split>-<dataset>-<probs key>.json``
            (:func:`eval_file_name`).
        overwrite: replace an existing output file.

    Returns:
        ``{"image": m, "location": m, "fused": m, "fused_calibrated": m, "fusion", "split",
        "probs_key", "beta"}`` where each ``m`` has ``top1, top3, top5, top10, mrr, nll, ece,
        n`` (see :func:`evaluate_split`; the calibrated fusion is fitted on the dataset's
        ``calib`` split, or cross-fitted on ``split`` without one).

    Raises:
        CheckpointError: when the run has no prior.
        DatasetError: when the split is missing, unlabelled or lacks probabilities, or the
            dataset's classes are not the run's (same names, same order).
        ConfigError: on an invalid ``beta`` / ``batch_size``, ``beta="tune"`` without a
            ``calib`` split, or an existing output file.
    """
    cfg = from_dict(EvaluateConfig, {"split": split, "probs_key": probs_key, "beta": beta,
                                     "batch_size": batch_size, "device": device}, where="evaluate")
    run = RunDir(run_dir)
    prior = load_prior(run.path)
    ds = as_dataset(data)
    check_same_classes(prior.classes, ds)
    s, ratio = ds.split(cfg.split), run_ratio(run.path)
    target = Path(out) if out is not None else run.path / eval_file_name(cfg.split, ds.root, eval_probs_key(s, cfg, ratio))
    refuse_existing(target, overwrite)
    prior = prior.to(resolve_device(cfg.device))
    metrics = evaluate_split(prior.logits, prior, s, prior.num_classes, cfg, ratio, calib_split(ds, cfg))
    if is_main_process():
        atomic_write_json(target, metrics)
    return metrics
