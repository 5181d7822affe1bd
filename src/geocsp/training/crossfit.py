"""Cross-fitting the calibrated fusion on the labelled train subset (docs/fusion.md, docs/protocol.md).

For a dataset without a ``calib`` split whose ``train`` split stores the image classifier's
probabilities. The run's labelled subset (the rows the prior was fine-tuned on, with a
location) is dealt into K stratified, seeded folds (:func:`plan_folds`); for each fold the
prior is refitted with the run's own fine-tuning config on the other K − 1 folds (a run of
its own in ``RUN/crossfit/fold<f>/``, :func:`train_fold_priors`) and predicts P(y|x) on the
held-out fold; (β, ε) are fitted on these out-of-fold P(y|x), the train split's image
probabilities under the reported key and the labels (:func:`fit_crossfit`). The reported
split is never read: the fold runs are handed the dataset without it (and without
``calib``), with the held-out fold's locations removed.

Cost: K extra fine-tunings per run. Known bias: the image classifier was trained on these
rows, so its probabilities there are over-confident and the fitted β leans towards the
image (the safe direction). Fine-tuning is passed in (``refit``) because this module sits
below :mod:`geocsp.training.finetune`, whose evaluation uses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.checkpoints import load_prior
from geocsp.config import to_dict
from geocsp.data import GeoDataset, Split
from geocsp.data.splits import training_subset, usable_rows
from geocsp.distributed import main_first
from geocsp.errors import ConfigError, DatasetError
from geocsp.evaluation.calibration import FittedFusion, fit_fusion_chunks, stratified_folds
from geocsp.io import atomic_write_json, atomic_write_npy
from geocsp.runtime import is_main_process, resolve_device
from geocsp.training.compat import config_dict_for_compare
from geocsp.training.config import FinetuneConfig
from geocsp.training.inference import location_probs
from geocsp.training.rundir import CROSSFIT_DIR, METRICS_FILE

PLAN_FILE = "plan.json"
FOLDS_FILE = "folds.npy"
ROWS_PER_CHUNK = 8192
"""Held-out rows scored at a time: only one chunk's (rows, Q) P(y|x) is in memory."""

Refit = Callable[[FinetuneConfig, GeoDataset, Path], Any]
"""``refit(config, dataset, run_dir)``: one fine-tuning run (:func:`geocsp.training.finetune`)."""


@dataclass(frozen=True)
class FoldPlan:
    """The folds of a run's labelled subset.

    Attributes:
        root: ``RUN/crossfit``.
        rows: (M,) int64 train-split rows of the subset (labelled, with a location), sorted.
        folds: (M,) int64 fold of each row in [0, k).
        k: number of folds.
        seed: seed of the fold order (the run's seed).
    """

    root: Path
    rows: np.ndarray
    folds: np.ndarray
    k: int
    seed: int

    def fold_dir(self, f: int) -> Path:
        """``RUN/crossfit/fold<f>``: the run refitted without fold ``f``."""
        return self.root / f"fold{f}"

    def subset_file(self, f: int) -> Path:
        """``RUN/crossfit/fold<f>-train.npy``: the rows fold ``f``'s prior is fine-tuned on."""
        return self.root / f"fold{f}-train.npy"

    def held_out(self, f: int) -> np.ndarray:
        """(M_f,) train rows of fold ``f`` (scored by the prior refitted without them)."""
        return self.rows[self.folds == f]

    def sizes(self) -> list[int]:
        """Rows per fold."""
        return np.bincount(self.folds, minlength=self.k).tolist()


def subset_rows(run_dir: str | Path, train: Split, config: FinetuneConfig) -> np.ndarray:
    """Train-split rows a run was fine-tuned on: its λ-subset or ``--subset`` file, with a location.

    Args:
        run_dir: the fine-tuning run (its saved subset is reused; drawn and saved if absent).
        train: the dataset's train split.
        config: the run's config (ratio, seed, subset).

    Returns:
        (M,) sorted int64 row indices into ``train``.

    Raises:
        DatasetError: on a train split without labels or an invalid subset.
    """
    labels = _train_labels(train)
    pos = training_subset(run_dir, labels, train.has_location, config.ratio, config.seed, config.subset)
    return usable_rows(labels, train.has_location)[pos]


def _train_labels(train: Split) -> np.ndarray:
    if train.labels is None:
        raise DatasetError(f"split '{train.name}' has no labels to cross-fit the fusion on")
    return train.labels


def _require_probs(train: Split, key: str) -> None:
    if key not in train.prob_keys:
        raise DatasetError(f"split '{train.name}' has no image probabilities '{key}' to cross-fit the fusion on "
                           f"(stored: {', '.join(train.prob_keys) or 'none'})")


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _labels_sha(train: Split) -> str:
    labels = np.zeros(0, np.int64) if train.labels is None else train.labels
    return hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def plan_folds(run_dir: str | Path, train: Split, config: FinetuneConfig, k: int,
               root: str | Path | None = None) -> FoldPlan:
    """Deal the run's labelled subset into k stratified folds and save the plan in ``root``.

    The folds depend only on the subset's labels, k and ``config.seed``. A saved plan made
    for another config, k or subset is removed with its fold runs (the directory is the
    cross-fit's own); one made for the same is kept, so an interrupted cross-fit resumes.

    Args:
        run_dir: the fine-tuning run.
        train: the train split.
        config: the run's config.
        k: number of folds, >= 2 (fewer when the subset has fewer rows).
        root: the plan's directory (default ``RUN/crossfit``; model selection keeps one per
            candidate, :mod:`geocsp.training.select`).

    Returns:
        The :class:`FoldPlan`.

    Raises:
        ConfigError: when the subset has fewer than 2 rows (k >= 2 is checked by the config).
        DatasetError: on a train split without labels or an invalid subset.
    """
    rows = subset_rows(run_dir, train, config)
    if rows.size < 2:
        raise ConfigError(f"evaluate.crossfit_folds: the run's labelled subset has {rows.size} row(s) with a "
                          "location; cross-fitting the fusion needs at least 2")
    k = min(k, int(rows.size))
    folds = stratified_folds(_train_labels(train)[rows], k, config.seed)
    plan = FoldPlan(Path(run_dir) / CROSSFIT_DIR if root is None else Path(root), rows, folds, k, config.seed)
    meta = {"k": k, "seed": config.seed, "rows": int(rows.size), "labels_sha1": _labels_sha(train),
            "config_sha256": _sha(config_dict_for_compare(to_dict(config))), "folds_sha256": _sha(folds.tolist())}
    if not is_main_process():
        return plan
    saved = _read_json(plan.root / PLAN_FILE)
    if saved != meta:
        if plan.root.exists():
            shutil.rmtree(plan.root)
        plan.root.mkdir(parents=True)
        for f in range(k):
            atomic_write_npy(plan.subset_file(f), rows[folds != f])
        atomic_write_npy(plan.root / FOLDS_FILE, np.stack([rows, folds], 1))
        atomic_write_json(plan.root / PLAN_FILE, meta)  # last: the plan is complete
    return plan


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_plan(run_dir: str | Path, train: Split) -> FoldPlan | None:
    """The saved plan of a run whose fold priors are all trained, for this train split; else None.

    Args:
        run_dir: the fine-tuning run.
        train: the train split the folds must index (same labels as when planned).

    Returns:
        The :class:`FoldPlan`, or None when there is none, a fold run is unfinished, or the
        plan was made on other labels.
    """
    root = Path(run_dir) / CROSSFIT_DIR
    meta = _read_json(root / PLAN_FILE)
    if not isinstance(meta, dict) or meta.get("labels_sha1") != _labels_sha(train):
        return None
    try:
        table = np.load(root / FOLDS_FILE, allow_pickle=False)
    except (OSError, ValueError):
        return None
    plan = FoldPlan(root, table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), int(meta["k"]),
                    int(meta["seed"]))
    return plan if all((plan.fold_dir(f) / METRICS_FILE).is_file() for f in range(plan.k)) else None


def fold_view(train: Split, held_out: np.ndarray) -> Split:
    """The train split as a fold run sees it: the held-out rows have no location.

    A row without a location trains nothing (neither as a labelled row nor as a soft
    target of distillation), so the fold's prior cannot learn from the rows it will score.

    Args:
        train: the train split.
        held_out: (M_f,) rows of the held-out fold.

    Returns:
        A new :class:`~geocsp.data.Split` sharing everything but ``lonlat`` (and
        ``has_location``) with ``train``.
    """
    lonlat = np.array(train.lonlat, dtype=np.float64, copy=True)
    lonlat[held_out] = np.nan
    probs = {k: train.probs(k, dense=False) for k in train.prob_keys}
    return Split(train.name, train.table, lonlat, train.labels, train.features, probs)


def train_fold_priors(refit: Refit, config: FinetuneConfig, ds: GeoDataset, run_dir: str | Path, k: int,
                      hidden: Collection[str] = ("val", "calib"), root: str | Path | None = None) -> FoldPlan:
    """Refit the prior K times, each on the run's subset without one fold (resumable).

    Each fold run has the run's config with ``subset`` set to its K − 1 folds (everything
    else, epochs included, unchanged). It sees the dataset without the ``hidden`` splits
    (the reported and calibration splits: it never reads them, and evaluates nothing) and
    with the held-out fold's locations removed (:func:`fold_view`). A finished fold run is
    kept.

    Args:
        refit: the fine-tuning function.
        config: the run's config.
        ds: the dataset.
        run_dir: the fine-tuning run.
        k: number of folds.
        hidden: splits the fold runs must not see.
        root: the plan's directory (see :func:`plan_folds`).

    Returns:
        The :class:`FoldPlan` (every fold prior trained).

    Raises:
        ConfigError: when the subset has fewer than 2 rows.
        DatasetError: on a train split without labels or an invalid subset.
    """
    train = ds.split("train")
    plan = main_first(lambda: plan_folds(run_dir, train, config, k, root))
    others = {n: ds.split(n) for n in ds.split_names if n != "train" and n not in hidden}
    for f in range(plan.k):
        if not (plan.fold_dir(f) / METRICS_FILE).is_file():
            fold_ds = GeoDataset(ds.root, ds.manifest, {"train": fold_view(train, plan.held_out(f)), **others})
            fold_cfg = dataclasses.replace(config, subset=str(plan.subset_file(f)), subset_sha256=None)
            refit(fold_cfg, fold_ds, plan.fold_dir(f))
    return plan


def _held_out_chunks(plan: FoldPlan, train: Split, key: str, batch_size: int,
                     device: Any) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]:
    """``(img, loc, labels, has)`` of the held-out rows, fold by fold, a chunk at a time."""
    labels = _train_labels(train)
    img_all = train.probs(key, dense=False)
    for f in range(plan.k):
        prior = load_prior(plan.fold_dir(f)).to(device)
        held = plan.held_out(f)
        for start in range(0, len(held), ROWS_PER_CHUNK):
            rows = held[start: start + ROWS_PER_CHUNK]
            has = train.has_location[rows]
            loc = location_probs(prior.logits, prior, train.lonlat[rows], has, prior.num_classes, batch_size, device)
            yield img_all[rows], loc, labels[rows], has


def fit_crossfit(plan: FoldPlan, train: Split, key: str, *, batch_size: int = 4096,
                 device: str = "auto", criterion: str = "top1") -> FittedFusion:
    """Fit (β, ε) on the out-of-fold P(y|x) of the fold priors and the train image probabilities.

    Args:
        plan: a plan whose fold priors are trained.
        train: the train split.
        key: the image-probability set of the reported split (the train split must store it).
        batch_size: rows per chunk of the prior and of the fit.
        device: ``auto``, ``cpu``, ``cuda`` ...
        criterion: ``top1`` or ``nll`` (:func:`~geocsp.evaluation.calibration.fit_fusion`).

    Returns:
        The :class:`FittedFusion`, ``fitted_on="crossfit-train-k<K>"``, with ``crossfit``
        details ``{"k", "seed", "fold_rows", "probs_key"}``.

    Raises:
        DatasetError: when the train split lacks the probabilities ``key``.
    """
    _require_probs(train, key)
    dev = resolve_device(device)
    fit = fit_fusion_chunks(_held_out_chunks(plan, train, key, batch_size, dev), criterion=criterion,
                            batch_size=batch_size, device=dev)
    return FittedFusion.from_fit(fit, f"crossfit-train-k{plan.k}", crossfit={
        "k": plan.k, "seed": plan.seed, "fold_rows": plan.sizes(), "probs_key": key})


def crossfit_fusion(refit: Refit, config: FinetuneConfig, ds: GeoDataset, run_dir: str | Path, key: str, *,
                    k: int, hidden: Collection[str] = ("val", "calib"), batch_size: int = 4096,
                    device: str = "auto", criterion: str = "top1") -> FittedFusion:
    """Train the K fold priors of a run (or reuse them) and fit the calibrated fusion on them.

    Args:
        refit: the fine-tuning function.
        config: the run's config.
        ds: the dataset; its ``hidden`` splits are never read.
        run_dir: the fine-tuning run.
        key: the image-probability set of the reported split.
        k: number of folds.
        hidden: the reported and calibration splits (see :func:`train_fold_priors`).
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...
        criterion: ``top1`` or ``nll``.

    Returns:
        The :class:`FittedFusion` (see :func:`fit_crossfit`).

    Raises:
        ConfigError: when the subset has fewer than 2 rows.
        DatasetError: on a train split without labels or the probabilities ``key``.
    """
    train = ds.split("train")
    _require_probs(train, key)  # before K fine-tunings, not after
    plan = train_fold_priors(refit, config, ds, run_dir, k, hidden)
    return fit_crossfit(plan, train, key, batch_size=batch_size, device=device, criterion=criterion)
