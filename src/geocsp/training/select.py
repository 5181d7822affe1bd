"""Model selection of the location prior by K-fold cross-validation on the labelled subset.

``finetune.select.candidates`` names architectures (:data:`~geocsp.training.candidates.MODEL_CANDIDATES`:
``wrap``, ``grid-r<r_min>`` ...). Before fine-tuning, each candidate is refitted K times on the
run's labelled subset without one fold, with the fold logic of :mod:`geocsp.training.crossfit`
(the same stratified, seeded folds for every candidate, so the comparison is paired), and scores
the rows of the held-out fold. The candidate with the highest mean score is then fine-tuned on
the whole subset, exactly as a run of its own with that model would be. The reported (``val``)
and calibration (``calib``) splits are never read: the fold runs are handed the dataset without
them, and only ``train`` rows are scored.

Score: the class-balanced mean held-out log-likelihood of the true class under the location
prior normalised over classes, log P(y|x) = log σ(z_y) − log Σ_c σ(z_c), z = T e(x), over the
held-out rows whose class has at least one row in the fold's training rows.

* Log-likelihood of the normalised prior: a proper score of what the fusion consumes (both
  fusions rank classes by P(y|I) · P(y|x)^β at one location, so only the prior's ratios
  between classes matter there); it penalises a confidently wrong prior, which held-out top-1
  would not, and it needs no random background draws (the presence-only loss would, and its
  value depends on the loss's weights).
* Class-balanced (each class's rows weigh 1 / n_y): the reported splits are class-balanced
  (iNat2018 val: 3 rows per class; GeoWorld val and calib: a fixed number per class), while a
  long-tailed labelled subset is dominated by its common classes.
* Seen classes only: the final prior is trained on every class of the subset, but a class
  with fewer rows than K is absent from some fold's training rows, and its held-out rows then
  score the prior of a class it never saw (log-likelihoods near −20 that swamp the rest).
  Their share is recorded (``seen``).

Cost: ``len(candidates) × K`` extra fine-tunings of ``select.epochs`` epochs (0 = the run's
own) on (K − 1)/K of the subset; the fold runs live in ``RUN/select/<candidate>/`` and are
reused when the run is resumed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geocsp.checkpoints import load_prior
from geocsp.config import apply_overrides, from_dict, to_dict
from geocsp.data import GeoDataset, Split
from geocsp.errors import DatasetError
from geocsp.runtime import resolve_device
from geocsp.training.candidates import MODEL_CANDIDATES
from geocsp.training.config import FinetuneConfig, SelectConfig
from geocsp.training.crossfit import FoldPlan, Refit, train_fold_priors
from geocsp.training.inference import batched_rows
from geocsp.training.rundir import SELECT_DIR

SCORE = "heldout_loglik_balanced_seen"
"""Name of the selection score in ``metrics.json`` (see the module docstring)."""


NO_SCORE = "first candidate: no held-out row of a class seen in its fold's training rows"
"""``chosen_by`` when no candidate could be scored (e.g. one labelled row per class)."""


def _json_safe(data: Any) -> Any:
    """``data`` with NaN floats as None (metrics.json is strict JSON)."""
    if isinstance(data, dict):
        return {k: _json_safe(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_json_safe(v) for v in data]
    return None if isinstance(data, float) and not math.isfinite(data) else data


@dataclass(frozen=True)
class Selection:
    """The outcome of a model selection.

    Attributes:
        config: the run's config with the chosen candidate's ``model`` and selection off
            (what the final fine-tuning trains).
        record: ``{"score", "k", "epochs", "fold_rows", "seen" (share of held-out rows
            scored), "candidates": {name: {"folds": [K scores], "mean": the score,
            "top1": class-balanced held-out location-only top-1, "mean_all_rows": plain mean
            over every held-out row}}, "chosen", "chosen_by"}`` for ``metrics.json`` (NaN
            written as null).
    """

    config: FinetuneConfig
    record: dict[str, Any]


def candidate_config(config: FinetuneConfig, name: str) -> FinetuneConfig:
    """The run's config with candidate ``name``'s model overrides and selection off.

    Args:
        config: the run's config.
        name: a :data:`MODEL_CANDIDATES` name.

    Returns:
        The config a plain run of that candidate would have.

    Raises:
        ConfigError: on an unknown name or overrides the run's model cannot take.
    """
    data = apply_overrides(to_dict(config), list(MODEL_CANDIDATES.get(name).obj))
    data["select"] = to_dict(SelectConfig())
    return from_dict(FinetuneConfig, data, where=f"select candidate '{name}'")


def fold_config(config: FinetuneConfig, name: str) -> FinetuneConfig:
    """The config of candidate ``name``'s fold fits: ``select.epochs`` epochs, no evaluation, no cross-fit."""
    cand = candidate_config(config, name)
    epochs = config.select.epochs or cand.data.epochs
    return dataclasses.replace(cand, data=dataclasses.replace(cand.data, epochs=epochs), crossfit_folds=0,
                               eval_every=0, quiet=True, checkpoint_every=epochs, keep_checkpoints=1)


def balanced_mean(values: np.ndarray, labels: np.ndarray) -> float:
    """Mean of ``values`` with each row weighted by 1 / (rows of its class): every class counts once.

    Args:
        values: (M,) per-row values.
        labels: (M,) int classes.

    Returns:
        The class-balanced mean (NaN for no rows).

    >>> balanced_mean(np.array([1.0, 1.0, 1.0, 4.0]), np.array([0, 0, 0, 1]))
    2.5
    """
    if len(values) == 0:
        return float("nan")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return float((w * values).sum() / w.sum())


def seen_rows(plan: FoldPlan, labels: np.ndarray) -> np.ndarray:
    """(M,) bool: whether each held-out row's class has a row in its fold's training rows.

    Args:
        plan: the fold plan.
        labels: (N,) train-split labels.

    Returns:
        A mask in the order of ``plan.rows``.
    """
    y = labels[plan.rows]
    seen = np.zeros(len(y), bool)
    for f in range(plan.k):
        held = plan.folds == f
        seen[held] = np.isin(y[held], y[~held])
    return seen


def true_class_loglik(log_scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) log-likelihood of the true classes under (B, Q) log-scores normalised over classes.

    ``log_scores[i, y_i] - logsumexp_c log_scores[i, c]``: with ``log sigmoid(z)`` as scores,
    the log P(y|x) of a presence-only prior normalised over classes (the selection score).
    """
    return log_scores.gather(1, y[:, None])[:, 0] - torch.logsumexp(log_scores, 1)


def log_location_likelihood(plan: FoldPlan, train: Split, *, batch_size: int = 4096,
                            device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Held-out log P(y|x) of the true class and location-only hits, row by row.

    Args:
        plan: a plan whose fold priors are trained.
        train: the train split (labels and locations of the held-out rows).
        batch_size: rows per prior call.
        device: ``auto``, ``cpu``, ``cuda`` ...

    Returns:
        ``(loglik, hit)``: (M,) float64 log P(y|x) normalised over classes (natural log) and
        (M,) bool argmax_y P(y|x) == y, in the order of ``plan.rows``.
    """
    assert train.labels is not None  # the plan was made from the train labels
    dev = resolve_device(device)
    loglik, hit = np.empty(len(plan.rows)), np.empty(len(plan.rows), bool)
    for f in range(plan.k):
        prior = load_prior(plan.fold_dir(f)).to(dev)
        rows = plan.held_out(f)

        def log_sigmoid(x: torch.Tensor, p: Any = prior) -> torch.Tensor:
            return F.logsigmoid(p.logits(x).float())

        with torch.no_grad():
            logp = batched_rows(log_sigmoid, train.lonlat[rows], np.ones(len(rows), bool), prior.num_classes,
                                batch_size, dev)
        lp = torch.from_numpy(logp).double()
        y = torch.from_numpy(train.labels[rows].astype(np.int64))
        at = np.searchsorted(plan.rows, rows)  # plan.rows is sorted
        loglik[at] = true_class_loglik(lp, y).numpy()
        hit[at] = (lp.argmax(1) == y).numpy()
    return loglik, hit


def select_model(config: FinetuneConfig, ds: GeoDataset, run_dir: str | Path, refit: Refit) -> Selection | None:
    """Cross-validate ``config.select.candidates`` on the run's labelled subset and pick the best.

    Args:
        config: the run's config (its subset is the one ``run_dir`` saved).
        ds: the dataset; ``val`` and ``calib`` are never read.
        run_dir: the fine-tuning run; the fold runs go to ``RUN/select/<candidate>/``.
        refit: the fine-tuning function (:func:`geocsp.training.finetune`).

    Returns:
        The :class:`Selection`, or None when ``select.candidates`` is empty (off). The chosen
        candidate has the highest score; a tie goes to the earlier candidate. When no
        held-out row can be scored (every class has one labelled row, so a fold never trains
        on the class of the rows it holds out) the first candidate is kept and
        ``chosen_by`` says so.

    Raises:
        ConfigError: when the subset has fewer than 2 rows, or a candidate does not fit the
            run's model section.
    """
    sel = config.select
    if not sel.candidates:
        return None
    train = ds.split("train")
    labels = train.labels
    if labels is None:
        raise DatasetError("split 'train' has no labels to select the prior's model on")
    scores: dict[str, dict[str, Any]] = {}
    plan: FoldPlan | None = None
    for name in (MODEL_CANDIDATES.canonical(c) for c in sel.candidates):
        plan = train_fold_priors(refit, fold_config(config, name), ds, run_dir, sel.folds,
                                 root=Path(run_dir) / SELECT_DIR / name)
        loglik, hit = log_location_likelihood(plan, train, device=config.device)
        seen = seen_rows(plan, labels)
        y = labels[plan.rows]
        scores[name] = {
            "folds": [balanced_mean(loglik[seen & (plan.folds == f)], y[seen & (plan.folds == f)])
                      for f in range(plan.k)],
            "mean": balanced_mean(loglik[seen], y[seen]), "top1": balanced_mean(hit[seen].astype(float), y[seen]),
            "mean_all_rows": float(loglik.mean())}
    assert plan is not None
    scored = {n: v["mean"] for n, v in scores.items() if math.isfinite(v["mean"])}
    # no scorable row (every class has a single labelled row): nothing to compare, the first candidate stays
    chosen = max(scored, key=lambda n: scored[n]) if scored else next(iter(scores))  # max keeps the first of equals
    record = {"score": SCORE, "k": plan.k, "epochs": sel.epochs or config.data.epochs, "fold_rows": plan.sizes(),
              "seen": float(seen_rows(plan, labels).mean()), "candidates": _json_safe(scores), "chosen": chosen,
              "chosen_by": SCORE if scored else NO_SCORE}
    return Selection(candidate_config(config, chosen), record)
