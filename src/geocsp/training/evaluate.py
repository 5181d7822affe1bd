"""Evaluation of a fine-tuned prior on a dataset split (spec §6).

:func:`evaluate_split` scores a prior's P(y|x), the split's image probabilities P(y|I) and
their fusions on the labelled rows: the paper's P(y|I) * P(y|x)^beta (``fused``) and the
calibrated fusion (``fused_calibrated``, docs/fusion.md), fixed before the reported split is
read; :func:`fusion_source` chooses where that fusion comes from: the ``calib`` split, else a
cross-fit on the run's labelled train subset (:mod:`geocsp.training.crossfit`), else none
(docs/protocol.md). :func:`evaluate` does it for a run directory and writes a file of its own
(``--out``, or ``RUN/eval-<split>-<dataset>-<probs>.json``), never the run's training-time
``metrics.json``, and never over an existing file unless asked. Under torchrun each rank
scores a shard of the rows and the metric sums are reduced over ranks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
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
from geocsp.evaluation.calibration import FittedFusion, fit_fusion, uncalibrated_info
from geocsp.evaluation.protocol import evaluate_fused
from geocsp.io import atomic_write_json
from geocsp.prior.fusion import Fusion
from geocsp.runtime import distributed_active, is_main_process, resolve_device
from geocsp.training.config import EvaluateConfig, FinetuneConfig
from geocsp.training.crossfit import CROSSFIT_DIR, Refit, crossfit_fusion, fit_crossfit, load_plan
from geocsp.training.data import as_dataset
from geocsp.training.inference import check_same_classes, location_probs, resolve_probs_key
from geocsp.training.rundir import RunDir, run_ratio


def eval_probs_key(split: Split, cfg: EvaluateConfig, ratio: float | None) -> str | None:
    """The image-probability set an evaluation uses; None: location only (``auto``, none stored)."""
    if not split.prob_keys and cfg.probs_key == "auto":
        return None
    return resolve_probs_key(split, cfg.probs_key, ratio)


def eval_file_name(split: str, dataset: str | Path, probs_key: str | None, criterion: str = "top1") -> str:
    """``eval-<split>-<dataset dir name>-<probs key or "location">[-nll].json`` (safe characters only).

    Args:
        split: the evaluated split.
        dataset: the dataset directory.
        probs_key: the image-probability set, None for a location-only evaluation.
        criterion: the calibrated fusion's criterion (``-nll`` is appended for ``nll``).

    Returns:
        The file name (never ``metrics.json``, the run's training-time metrics).
    """
    parts = (split, Path(dataset).name or "dataset", probs_key or "location", *(() if criterion == "top1" else (criterion,)))
    return "eval-" + "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts) + ".json"


def _labelled_rows(split: Split, what: str) -> np.ndarray:
    """Indices of the split's labelled rows.

    Raises:
        DatasetError: when there are none.
    """
    if split.labels is None or not (split.labels >= 0).any():
        raise DatasetError(f"split '{split.name}': no labelled rows {what}")
    return np.flatnonzero(split.labels >= 0)


class StreamedLocationProbs:
    """(N, Q) P(y|x) of a prior, computed a row slice at a time when read (never held whole).

    For one evaluation pass that reads it in row order (``evaluate_fused``'s chunks): each
    ``probs[lo:hi]`` returns a float32 view of a reused buffer, valid until the next read.
    The prior runs on exactly the batches :func:`location_probs` uses (``batch_size``
    consecutive rows *with* a location), the last one kept for the next read, so the values
    are bit for bit those of :func:`location_probs`. Memory: about three (batch, Q) buffers
    instead of (N, Q).

    Args:
        logits_fn: (B, 2) degrees -> (B, Q) logits.
        module: the module holding the prior (eval mode while it runs, then restored).
        lonlat: (N, 2) degrees.
        has_location: (N,) bool.
        num_classes: Q.
        batch_size: rows with a location per forward pass.
        device: where the prior runs.
    """

    def __init__(self, logits_fn: Callable[[Tensor], Tensor], module: nn.Module, lonlat: np.ndarray,
                 has_location: np.ndarray, num_classes: int, batch_size: int, device: Any) -> None:
        self.logits_fn, self.module, self.batch_size, self.device = logits_fn, module, batch_size, device
        self.has = np.asarray(has_location, bool)
        self.rank = np.cumsum(self.has) - self.has  # located index of each row (of the next one if none)
        self.lonlat = np.asarray(lonlat)[self.has]  # the located rows, in order
        self.shape = (len(self.has), num_classes)
        self._out = np.empty((0, num_classes), np.float32)
        self._batch: tuple[int, np.ndarray] = (-1, np.empty((0, num_classes), np.float32))

    def _probs_of_batch(self, k: int) -> np.ndarray:
        """P(y|x) of located batch ``k`` (computed once; the last one is kept)."""
        if self._batch[0] != k:
            pts = self.lonlat[k * self.batch_size: (k + 1) * self.batch_size]
            buf = self._batch[1] if len(self._batch[1]) >= len(pts) else np.empty((len(pts), self.shape[1]), np.float32)
            self._batch = (k, location_probs(self.logits_fn, self.module, pts, np.ones(len(pts), bool),
                                             self.shape[1], self.batch_size, self.device, out=buf[: len(pts)]))
        return self._batch[1]

    def __getitem__(self, index: slice) -> np.ndarray:
        """P(y|x) of rows ``index`` (a slice), (hi - lo, Q) float32, NaN rows without a location."""
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("StreamedLocationProbs is read by contiguous row slices only")
        lo, hi, _ = index.indices(self.shape[0])
        n = max(hi - lo, 0)
        if len(self._out) < n:
            self._out = np.empty((n, self.shape[1]), np.float32)
        out = self._out[:n]
        has = self.has[lo:hi]
        out[~has] = np.nan
        if n and has.any():
            first, last = int(self.rank[lo]), int(self.rank[lo]) + int(has.sum())  # located indices [first, last)
            dst = np.flatnonzero(has)
            b = self.batch_size
            every = bool(has.all())
            for k in range(first // b, (last - 1) // b + 1):
                a, z = max(first, k * b), min(last, (k + 1) * b)
                rows = slice(a - first, z - first) if every else dst[a - first: z - first]
                out[rows] = self._probs_of_batch(k)[a - k * b: z - k * b]
        return out


def _scored_rows(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, split: Split, rows: np.ndarray,
                 key: str | None, num_classes: int, batch_size: int, device: Any,
                 stream: bool = False) -> tuple[Any, Any, Any, Any]:
    """``(img, loc, labels, has)`` of ``rows``: P(y|I) under ``key`` (uniform for None) and P(y|x).

    ``stream``: P(y|x) as a :class:`StreamedLocationProbs` (for one in-order pass), not an array.

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
    loc = (StreamedLocationProbs(logits_fn, module, lonlat, has, num_classes, batch_size, device) if stream
           else location_probs(logits_fn, module, lonlat, has, num_classes, batch_size, device))
    return img, loc, split.labels[rows] if split.labels is not None else None, has


NEEDS_CALIBRATION = ("no calibrated fusion: it needs a calib split or image probabilities for the train split "
                     "(cross-fitting on the labelled subset; docs/protocol.md)")
"""The ``why`` of a metrics dict without ``fused_calibrated`` when nothing more specific is known."""


@dataclass(frozen=True)
class NoCalibration:
    """No calibrated fusion for this evaluation, and the one-line reason (``fusion.why``)."""

    why: str = NEEDS_CALIBRATION


FusionSource = Split | FittedFusion | NoCalibration
"""Where ``fused_calibrated`` comes from: a calib split to fit on, a fusion fitted elsewhere
(cross-fitting), or none."""


def _calibrate(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, source: FusionSource | None, key: str,
               num_classes: int, cfg: EvaluateConfig, device: Any) -> tuple[FittedFusion | NoCalibration, float]:
    """The calibrated fusion (fitted here when ``source`` is a calib split) and the paper's β.

    Reads ``source`` only, never the reported split.

    Raises:
        DatasetError: when the calib split has no labelled rows or no probabilities ``key``.
    """
    if not isinstance(source, Split):
        return (source if source is not None else NoCalibration()), float(cfg.beta)
    c_rows = _labelled_rows(source, "to fit the fusion on")
    if key not in source.prob_keys:
        raise DatasetError(f"split '{source.name}' has no image probabilities '{key}' (the key of the evaluated "
                           f"split; stored: {', '.join(source.prob_keys)}); add them or remove the split")
    cal = _scored_rows(logits_fn, module, source, c_rows, key, num_classes, cfg.batch_size, device)
    fit = fit_fusion(*cal, criterion=cfg.fusion_criterion, batch_size=cfg.batch_size, device=device)
    beta = tune_beta(*cal, batch_size=cfg.batch_size, device=device) if cfg.beta == "tune" else float(cfg.beta)
    return FittedFusion.from_fit(fit, "calib"), beta


def evaluate_split(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, split: Split,
                   num_classes: int, cfg: EvaluateConfig, ratio: float | None,
                   calib: FusionSource | None = None) -> dict[str, Any]:
    """Image / location / fused (paper and calibrated) metrics of a prior on one split's labelled rows.

    The calibrated fusion ``log P(y|I) + β log(ε + (1 − ε) P(y|x))`` (docs/fusion.md) is
    fixed before the reported split is read: fitted here on ``calib`` when it is a split
    (its labelled rows, image probabilities under the reported key), or given already
    fitted (cross-fitting on the labelled train subset, :func:`fusion_source`); with
    :class:`NoCalibration` (or None) there is none. ``fused`` is the paper's product with
    ``cfg.beta``; ``beta="tune"`` tunes β on a calib split and needs one.

    Args:
        logits_fn: (B, 2) lon/lat degrees -> (B, Q) logits of the prior.
        module: the module holding the prior (switched to eval mode while scoring).
        split: the reported split.
        num_classes: Q.
        cfg: the evaluation settings.
        ratio: the run's label ratio λ (selects ``ratio{λ:.3f}`` probabilities under ``auto``).
        calib: a calib split, a :class:`~geocsp.evaluation.calibration.FittedFusion`, a
            :class:`NoCalibration`, or None (= ``NoCalibration()``).

    Returns:
        ``{"image", "location", "fused", "fused_calibrated"}`` metric dicts (``top1 … n``;
        ``fused_calibrated`` None without a calibrated fusion), ``fusion`` (the entry of
        :meth:`~geocsp.evaluation.calibration.FittedFusion.info` or
        :func:`~geocsp.evaluation.calibration.uncalibrated_info`: ``paper``, ``calibrated``,
        ``fitted_on`` = ``calib`` | ``crossfit-train-k<K>`` | None, ``calib_rows``,
        ``image_only_top1_calib``, ``paper_top1_calib``, ``hurts``, ``warning``, ``why``), plus
        ``split``, ``probs_key``, ``beta``. A split without image-classifier probabilities is
        evaluated on location alone: ``image``, ``fused``, ``fused_calibrated`` and ``fusion``
        are then None and ``probs_key`` is None.

    Raises:
        DatasetError: when the split (or ``calib``) has no labelled rows, or a named
            probability set is missing from either.
        ConfigError: ``beta="tune"`` without a calib split.
    """
    key = eval_probs_key(split, cfg, ratio)
    device = resolve_device(cfg.device)
    if key is None:
        rows = _labelled_rows(split, "to evaluate")
        img, loc, labels, has = _scored_rows(logits_fn, module, split, rows, None, num_classes,
                                             cfg.batch_size, device, stream=True)
        metrics: dict[str, Any] = evaluate_scores(img, loc, labels, has, beta=1.0, batch_size=cfg.batch_size,
                                                  device=device)
        return {**metrics, "image": None, "fused": None, "fused_calibrated": None, "fusion": None,
                "split": split.name, "probs_key": None, "beta": 1.0}
    if cfg.beta == "tune" and not isinstance(calib, Split):
        raise ConfigError(f"beta=tune needs a calib split ('{cfg.calib_split}' is not in the dataset); use the "
                          "calibrated fusion reported as fused_calibrated instead")
    fitted, beta = _calibrate(logits_fn, module, calib, key, num_classes, cfg, device)  # before split is read
    rows = _labelled_rows(split, "to evaluate")
    sharded = distributed_active()  # torchrun: each rank scores a shard
    if sharded:
        rows = shard_rows(rows)
    img, loc, labels, has = _scored_rows(logits_fn, module, split, rows, key, num_classes, cfg.batch_size, device,
                                         stream=True)  # P(y|x) chunk by chunk inside the metric pass
    fusions = {"fused": Fusion("paper", beta)}
    if isinstance(fitted, FittedFusion):
        fusions["fused_calibrated"] = fitted.fusion
    scores = evaluate_fused(img, loc, labels, has, fusions, batch_size=cfg.batch_size, device=device,
                            reduce=all_reduce_sum if sharded else None)
    info = fitted.info(beta) if isinstance(fitted, FittedFusion) else uncalibrated_info(beta, fitted.why)
    return {**scores, "fused_calibrated": scores.get("fused_calibrated"), "fusion": info, "split": split.name,
            "probs_key": key, "beta": float(beta)}


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


def fusion_source(ds: GeoDataset, cfg: EvaluateConfig, ratio: float | None, *, run_dir: str | Path | None = None,
                  config: FinetuneConfig | None = None, refit: Refit | None = None) -> FusionSource:
    """Where the calibrated fusion of an evaluation comes from, chosen without the reported split.

    1. The dataset's ``cfg.calib_split`` (unless it is the reported split): fitted there.
    2. Else, when the train split stores image probabilities under the reported key and a
       fine-tuning run is given: cross-fitted on the run's labelled subset
       (:mod:`geocsp.training.crossfit`): with ``refit`` and ``config`` its
       ``cfg.crossfit_folds`` fold priors are trained (or reused), without them the run's
       saved fold priors are used when complete.
    3. Else :class:`NoCalibration` with the one-line reason.

    Args:
        ds: the dataset.
        cfg: the evaluation settings (split, probability key, folds).
        ratio: the run's label ratio λ.
        run_dir: the fine-tuning run (its subset and ``crossfit/`` directory), or None.
        config: the run's fine-tuning config (to refit the fold priors with), or None.
        refit: the fine-tuning function (:func:`geocsp.training.finetune`), or None.

    Returns:
        A calib split, a :class:`~geocsp.evaluation.calibration.FittedFusion` or a
        :class:`NoCalibration`.

    Raises:
        ConfigError: on fewer than 2 labelled subset rows to cross-fit.
        DatasetError: on an invalid subset or a missing reported split.
    """
    calib = calib_split(ds, cfg)
    if calib is not None:
        return calib
    key = eval_probs_key(ds.split(cfg.split), cfg, ratio)
    if key is None:
        return NoCalibration(f"no calibrated fusion: split '{cfg.split}' has no image probabilities")
    if cfg.split == "train" or "train" not in ds or key not in ds.split("train").prob_keys:
        return NoCalibration(f"no calibrated fusion: it needs a calib split or image probabilities '{key}' for the "
                             "train split (cross-fitting on the labelled subset; docs/protocol.md)")
    if run_dir is None:
        return NoCalibration("no calibrated fusion: no calib split, and cross-fitting needs the fine-tuning run")
    if refit is not None and config is not None:
        return crossfit_fusion(refit, config, ds, run_dir, key, k=cfg.crossfit_folds,
                               hidden=(cfg.split, cfg.calib_split), batch_size=cfg.batch_size, device=cfg.device,
                               criterion=cfg.fusion_criterion)
    train = ds.split("train")
    plan = load_plan(run_dir, train)
    if plan is None:
        return NoCalibration(f"no calibrated fusion: no calib split, and the run has no complete cross-fit of this "
                             f"train split ({CROSSFIT_DIR}/; fine-tuning with crossfit_folds=K >= 2 makes one)")
    return fit_crossfit(plan, train, key, batch_size=cfg.batch_size, device=cfg.device,
                        criterion=cfg.fusion_criterion)


def evaluate(run_dir: str | Path, data: GeoDataset | str | Path, split: str = "val",
             probs_key: str = "auto", beta: float | str = 1.0, *, batch_size: int = 4096,
             device: str = "auto", out: str | Path | None = None, overwrite: bool = False,
             fusion_criterion: str = "top1") -> dict[str, Any]:
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
        fusion_criterion: what chooses the calibrated fusion's (β, ε): ``top1`` or ``nll``
            (``-nll`` is then appended to the default file name).

    Returns:
        ``{"image": m, "location": m, "fused": m, "fused_calibrated": m, "fusion", "split",
        "probs_key", "beta"}`` where each ``m`` has ``top1, top3, top5, top10, mrr, nll, ece,
        n`` (see :func:`evaluate_split`; the calibrated fusion is fitted on the dataset's
        ``calib`` split, else taken from the run's cross-fit on its labelled train subset
        (:func:`fusion_source`), else None with ``fusion.why``).

    Raises:
        CheckpointError: when the run has no prior.
        DatasetError: when the split is missing, unlabelled or lacks probabilities, or the
            dataset's classes are not the run's (same names, same order).
        ConfigError: on an invalid ``beta`` / ``batch_size``, ``beta="tune"`` without a
            ``calib`` split, or an existing output file.
    """
    cfg = from_dict(EvaluateConfig, {"split": split, "probs_key": probs_key, "beta": beta,
                                     "batch_size": batch_size, "device": device,
                                     "fusion_criterion": fusion_criterion}, where="evaluate")
    run = RunDir(run_dir)
    prior = load_prior(run.path)
    ds = as_dataset(data)
    check_same_classes(prior.classes, ds)
    s, ratio = ds.split(cfg.split), run_ratio(run.path)
    target = Path(out) if out is not None else run.path / eval_file_name(cfg.split, ds.root, eval_probs_key(s, cfg, ratio),
                                                                        cfg.fusion_criterion)
    refuse_existing(target, overwrite, file=True)
    prior = prior.to(resolve_device(cfg.device))
    source = fusion_source(ds, cfg, ratio, run_dir=run.path)
    metrics = evaluate_split(prior.logits, prior, s, prior.num_classes, cfg, ratio, source)
    if is_main_process():
        atomic_write_json(target, metrics)
    return metrics
