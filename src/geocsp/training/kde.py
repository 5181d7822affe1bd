"""Fitting a fine-tuned run's class-KDE prior (:mod:`geocsp.prior.kde`; ``finetune.kde``).

After the network is trained, :func:`fit_class_kde` builds the pool (the labelled subset,
then a seeded sample of the other ``train`` rows and the ``unlabeled`` pairs, up to
``kde.pool_max``; their labels are not used; ``calib`` and ``val`` never enter it) and, with
``kde.soft``, the pseudo-labelled locations (:func:`pseudo_labels`: the same rows, with the
image classifier's probabilities of the run's ratio), chooses the bandwidth, α and γ (on
``calib`` when the dataset has one, else leave-one-out on the labelled subset) and the
network's weight k (on ``calib`` only), with ``kde.class_prior: cv`` the weight c of the
class-prior term (on ``calib`` only, by the row-mean fused score), and returns the
:class:`ClassKDE` with a record for
``metrics.json["kde"]``. ``val`` is never read. The score is the class-balanced
mean log-likelihood of the true class under the prior normalised over classes (the same as
:mod:`geocsp.training.select`'s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from geocsp.data import GeoDataset, Split
from geocsp.data.splits import usable_rows
from geocsp.errors import ConfigError
from geocsp.prior.kde import (
    ALPHAS,
    BANDWIDTHS_KM,
    CHUNK,
    CLASS_PRIORS,
    SHRINKS,
    SOFT_WEIGHTS,
    ClassKDE,
    KDEConfig,
    _kernel,
    _km,
    _log_ratio,
    _sums,
    _xyz,
    shrink_weights,
)
from geocsp.training.distill import topk_rows
from geocsp.training.inference import resolve_probs_key
from geocsp.training.select import balanced_mean, true_class_loglik

CALIB = "calib"
"""The split the choices are scored on when the dataset has it."""
SCORE_MAX_ROWS = 5000
"""At most this many scoring rows (a seeded sample) enter the choices: bounds their cost on large data."""
NO_CALIB = ("kde.shrink=cv chooses the network's weight on a labelled 'calib' split, which this dataset lacks; "
            "set kde.shrink to a number (inf = the KDE alone) or add one (geocsp data split --hold-out calib)")


def _unlabelled_rows(ds: GeoDataset, train_rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(split, row indices) of the locations known without their label: other train rows, unlabeled."""
    train = ds.split("train")
    rest = train.has_location.copy()
    rest[train_rows] = False
    out = [("train", np.flatnonzero(rest))]
    if "unlabeled" in ds:
        out.append(("unlabeled", np.flatnonzero(ds.split("unlabeled").has_location)))
    return out


def pool_locations(ds: GeoDataset, train_rows: np.ndarray, pool_max: int, seed: int,
                   labelled_only: bool = False) -> np.ndarray:
    """(P, 2) pool lon/lat: the labelled rows first (all of them), then a seeded sample of the rest.

    Args:
        ds: the dataset (``train``, and ``unlabeled`` when present).
        train_rows: rows of ``train`` in the labelled subset.
        pool_max: at most this many rows in all (never fewer than the labelled rows).
        seed: seed of the sample.
        labelled_only: the labelled rows alone (``kde.pool: labelled``).
    """
    labelled = ds.split("train").lonlat[train_rows]
    if labelled_only:
        return labelled
    others = np.concatenate([ds.split(n).lonlat[r] for n, r in _unlabelled_rows(ds, train_rows)])
    room = max(pool_max - len(labelled), 0)
    if len(others) > room:
        others = others[np.sort(np.random.default_rng(seed).choice(len(others), room, replace=False))]
    return np.concatenate([labelled, others])


def pseudo_labels(ds: GeoDataset, train_rows: np.ndarray, ratio: float,
                  soft_min: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pseudo-labelled locations: (lonlat (K, 2), class (K,), P(y|I) (K,)).

    Every location known without its label (other train rows, unlabeled pairs) whose image
    probability of a class (top 5 stored, the classifier of the run's ratio) is >= ``soft_min``.

    Raises:
        DatasetError: a split lacks the probabilities of the run's ratio (the key rule).
    """
    xs, ys, ps = [], [], []
    for name, rows in _unlabelled_rows(ds, train_rows):
        split = ds.split(name)
        idx, val = topk_rows(split.probs(resolve_probs_key(split, "auto", ratio), dense=False), rows, 5)
        r, c = np.nonzero(val >= soft_min)
        xs.append(split.lonlat[rows[r]])
        ys.append(idx[r, c])
        ps.append(val[r, c].astype(np.float64))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ps)


def location_loglik(logits: Tensor, y: Tensor) -> Tensor:
    """(B,) log sigmoid(z_y) - log Σ_c sigmoid(z_c) of the true classes."""
    return true_class_loglik(F.logsigmoid(logits), y)


def _nearest_km(points: np.ndarray) -> float:
    """Median distance (km) from a location to its nearest other location (inf for one)."""
    xyz = _xyz(points)
    if len(xyz) < 2:
        return math.inf
    nearest = []
    for i in range(0, len(xyz), CHUNK):
        d = _km(xyz[i : i + CHUNK], xyz)
        rows = torch.arange(d.shape[0])
        d[rows, rows + i] = math.inf
        nearest.append(d.min(1).values)
    return float(torch.cat(nearest).median())


def _grid(value: float | str, grid: tuple[float, ...]) -> tuple[float, ...]:
    return grid if value == "cv" else (float(value),)


def _default_bandwidth(points: np.ndarray) -> float:
    """The grid bandwidth nearest the median nearest-neighbour distance (the middle one for one point)."""
    near = _nearest_km(points)
    if not math.isfinite(near):
        return BANDWIDTHS_KM[len(BANDWIDTHS_KM) // 2]
    return min(BANDWIDTHS_KM, key=lambda b: abs(math.log(b) - math.log(max(near, 1e-3))))


def fit_class_kde(cfg: KDEConfig, ds: GeoDataset, positions: np.ndarray, seed: int,
                  net_logits: Callable[[Tensor], Tensor] | None, ratio: float = 1.0) -> tuple[ClassKDE, dict[str, Any]]:
    """The run's class KDE and its record (module docs).

    Args:
        cfg: the run's ``kde`` settings (enabled).
        ds: the dataset.
        positions: the labelled subset, as positions among the usable train rows (labelled,
            with a location: :func:`geocsp.data.splits.usable_rows`), as fine-tuning keeps it.
        seed: the run's seed (pool sample).
        net_logits: (B, 2) lon/lat -> (B, Q) network logits in eval mode, for ``shrink: cv``.
        ratio: the run's label ratio (its image classifier gives the pseudo-labels).

    Returns:
        (ClassKDE, ``{"bandwidth_km", "alpha", "soft", "shrink", "chosen_by", "scores", ...}``).

    Raises:
        ConfigError: ``shrink: cv`` on a dataset without a labelled ``calib`` split.
        DatasetError: ``soft`` without the image probabilities it needs.
    """
    train = ds.split("train")
    if train.labels is None:
        raise ConfigError("kde: the train split has no labels")
    rows = usable_rows(train.labels, train.has_location)[np.asarray(positions, np.int64)]
    points, labels = train.lonlat[rows], np.asarray(train.labels)[rows]
    q = len(ds.classes)
    pool = pool_locations(ds, rows, cfg.pool_max, seed, cfg.pool == "labelled")
    scored_calib = labelled_calib(ds)
    if cfg.shrink == "cv" and scored_calib is None:
        raise ConfigError(NO_CALIB)
    soft = pseudo_labels(ds, rows, ratio, cfg.soft_min) if cfg.soft != 0 else None
    hs, alphas = _grid(cfg.bandwidth_km, BANDWIDTHS_KM), _grid(cfg.alpha, ALPHAS)
    gammas = (0.0,) if soft is None else _grid(cfg.soft, SOFT_WEIGHTS)
    calib = None
    if scored_calib is not None:
        calib, src_y, keep = scored_calib
        src_x, loo, chosen_by = calib.lonlat, False, CALIB
    else:  # leave-one-out on the labelled rows of classes with >= 2 of them
        keep = np.bincount(labels, minlength=q)[labels] >= 2
        src_x, src_y, loo, chosen_by = points, labels, True, "leave-one-out"
    if keep.sum() > SCORE_MAX_ROWS:
        sample = np.random.default_rng(seed).choice(np.flatnonzero(keep), SCORE_MAX_ROWS, replace=False)
        keep = np.zeros(len(keep), bool)
        keep[sample] = True
    qx, qy = src_x[keep], src_y[keep]
    # the fused scores (soft: cv, class_prior: cv) read calib's image probabilities of the run's ratio
    img = _calib_img(calib, ratio, keep) if calib is not None and "cv" in (cfg.soft, cfg.class_prior) else None
    if loo:  # γ brings the image classifier's beliefs into the prior: only a fused score on calib may choose it
        gammas = gammas[:1] if cfg.soft == "cv" else gammas
    scores: dict[str, float] = {}
    soft_scores: dict[str, float] = {}
    if len(qy) and len(hs) * len(alphas) * len(gammas) > 1:
        scores = _grid_scores(ClassKDE(points, labels, q, pool, 1.0, 1.0, math.inf), soft, qx, qy,
                              np.flatnonzero(keep) if loo else None, hs, alphas, gammas)
        best = {g: max((k for k in scores if k.endswith(f"/{g:g}")), key=lambda k: scores[k]) for g in gammas}
        chosen = max(scores, key=lambda k: scores[k])
        if len(gammas) > 1 and img is not None:  # each γ with its best (h, α); γ by the fused score
            for g, key in best.items():
                hk, ak, _ = (float(v) for v in key.split("/"))
                soft_scores[f"{g:g}"] = _fused_score(_build(points, labels, soft, q, pool, hk, ak, g), img, qx, qy)
            chosen = best[float(max(soft_scores, key=lambda k: soft_scores[k]))]
        h, a, gamma = (float(v) for v in chosen.split("/"))
    else:
        chosen_by = "fixed" if len(hs) * len(alphas) * len(gammas) == 1 else "default"
        h = hs[0] if len(hs) == 1 else _default_bandwidth(points)
        a, gamma = (alphas[0] if len(alphas) == 1 else 1.0), (gammas[0] if len(gammas) == 1 else 0.0)
    kde = _build(points, labels, soft, q, pool, h, a, gamma)
    prior_scores: dict[str, float] = {}
    if cfg.class_prior == "cv" and img is not None and len(qy):  # c by the row-mean fused score on calib
        for c in CLASS_PRIORS:
            kde.class_prior = c
            prior_scores[f"{c:g}"] = _fused_score(kde, img, qx, qy, balanced=False)
        kde.class_prior = float(max(prior_scores, key=lambda k: prior_scores[k]))  # ties: the smaller c
    else:  # cv without calib: 0 (a fused score needs calib's image probabilities)
        kde.class_prior = 0.0 if cfg.class_prior == "cv" else float(cast(float, cfg.class_prior))
    shrink = math.inf if cfg.shrink in ("cv", None) else float(cast(float, cfg.shrink))
    shrink_scores: dict[str, float] = {}
    if cfg.shrink == "cv" and not loo and net_logits is not None:
        shrink_scores = _shrink_scores(kde, net_logits, qx, qy)
        shrink = float(max(shrink_scores, key=lambda s: shrink_scores[s]))
    kde.shrink = shrink
    record = {"bandwidth_km": h, "alpha": a, "soft": gamma, "shrink": "inf" if math.isinf(shrink) else shrink,
              "chosen_by": chosen_by, "scored_rows": len(qy), "pool": len(pool), "labelled": len(rows),
              "pseudo_labels": 0 if soft is None else len(soft[1]), "scores": scores, "soft_scores": soft_scores,
              "shrink_scores": shrink_scores, "class_prior": kde.class_prior, "class_prior_scores": prior_scores}
    return kde, record


def _calib_img(calib: Split, ratio: float, keep: np.ndarray) -> np.ndarray:
    """The scored calib rows' image probabilities of the run's ratio, (N, Q)."""
    return np.asarray(calib.probs(resolve_probs_key(calib, "auto", ratio)))[keep]


def _build(points: np.ndarray, labels: np.ndarray, soft: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
           q: int, pool: np.ndarray, h: float, a: float, gamma: float) -> ClassKDE:
    """The KDE of the labelled locations plus, for γ > 0, the pseudo-labelled ones at weight γ · P(y|I)."""
    if soft is None or gamma == 0:
        return ClassKDE(points, labels, q, pool, h, a, math.inf)
    return ClassKDE(np.concatenate([points, soft[0]]), np.concatenate([labels, soft[1]]), q, pool, h, a, math.inf,
                    np.concatenate([np.ones(len(labels)), gamma * soft[2]]), prior_rows=len(labels))


def _fused_score(kde: ClassKDE, img: np.ndarray, qx: np.ndarray, qy: np.ndarray, balanced: bool = True) -> float:
    """Mean log-likelihood of the true class under P(y|I) · sigmoid(z_y), normalised over classes.

    Class-balanced (each class's rows averaged first) unless ``balanced`` is False: the row mean,
    which weighs classes as the reported rows do (the class-prior weight c is chosen by it; a
    class-balanced score would discount exactly the class frequencies c adds).
    """
    ll = np.empty(len(qy))
    for start in range(0, len(qy), CHUNK):
        sl = slice(start, start + CHUNK)
        z = kde.log_ratio(torch.as_tensor(qx[sl], dtype=torch.float32))
        f = torch.log(torch.as_tensor(img[sl], dtype=torch.float64).clamp_min(1e-12)) + F.logsigmoid(z)
        ll[sl] = true_class_loglik(f, torch.as_tensor(qy[sl], dtype=torch.long)).numpy()
    return balanced_mean(ll, qy) if balanced else float(ll.mean())


def _grid_scores(kde: ClassKDE, soft: tuple[np.ndarray, np.ndarray, np.ndarray] | None, qx: np.ndarray,
                 qy: np.ndarray, loo_rows: np.ndarray | None, hs: tuple[float, ...], alphas: tuple[float, ...],
                 gammas: tuple[float, ...] = (0.0,)) -> dict[str, float]:
    """``{"h/α/γ": class-balanced score}`` over the grid.

    ``kde`` holds the labelled locations (and the pool, which they lead); ``soft`` the
    pseudo-labelled ones; ``loo_rows``: the query rows' indices among the labelled locations.
    """
    ll = {f"{h:g}/{a:g}/{g:g}": np.empty(len(qy)) for h in hs for a in alphas for g in gammas}
    y_all = torch.as_tensor(qy, dtype=torch.long)
    sp = None
    if soft is not None:
        s_lab, s_w = torch.as_tensor(soft[1], dtype=torch.long), torch.as_tensor(soft[2], dtype=torch.float64)
        sp = (_xyz(soft[0]), s_lab, s_w, torch.bincount(s_lab, s_w, minlength=kde.num_classes).double())
    for start in range(0, len(qy), CHUNK):
        sl = slice(start, start + CHUNK)
        qxyz = _xyz(qx[sl])
        d, dg = _km(qxyz, kde.points), _km(qxyz, kde.pool)
        y = y_all[sl]
        counts: Tensor = kde.counts.expand(len(y), -1)
        pool_n = float(dg.shape[1])
        if loo_rows is not None:  # the row out of its class and out of the pool (labelled rows lead the pool)
            own = torch.as_tensor(loo_rows[sl], dtype=torch.long)
            idx = torch.arange(len(y))
            d[idx, own] = math.inf
            dg[idx, own] = math.inf
            counts = counts.clone()
            counts[idx, y] -= 1.0
            pool_n -= 1.0
        d_soft = None if sp is None else _km(qxyz, sp[0])
        work = (torch.empty_like(d), torch.empty_like(dg))  # the kernels' buffers, reused over h
        for h in hs:
            s, g = _sums(d, dg, kde.labels, kde.num_classes, h, pool_n, work=work)
            s_soft, n_soft = None, None
            if sp is not None and d_soft is not None:  # the same per-row scale as s (d_min of the pool)
                dmin = dg.min(1, keepdim=True).values
                k = _kernel(d_soft, h, 0.5 * (dmin / h) ** 2).mul_(sp[2])
                s_soft, n_soft = torch.zeros_like(s).index_add_(1, sp[1], k), sp[3]
            for gamma in gammas:
                s_g = s if s_soft is None or gamma == 0 else s + gamma * s_soft
                c_g = counts if n_soft is None or gamma == 0 else counts + gamma * n_soft
                for a in alphas:
                    ll[f"{h:g}/{a:g}/{gamma:g}"][sl] = location_loglik(_log_ratio(s_g, g, c_g, a), y).numpy()
    return {k: balanced_mean(v, qy) for k, v in ll.items()}


@torch.no_grad()
def _shrink_scores(kde: ClassKDE, net_logits: Callable[[Tensor], Tensor], qx: np.ndarray,
                   qy: np.ndarray) -> dict[str, float]:
    """``{"k": class-balanced score}`` of the pooled logits over :data:`SHRINKS` on the scoring rows."""
    ll = {k: np.empty(len(qy)) for k in SHRINKS}
    for start in range(0, len(qy), CHUNK):
        x = torch.as_tensor(qx[start : start + CHUNK], dtype=torch.float32)
        f, z = net_logits(x).double().cpu(), kde.log_ratio(x).cpu()
        y = torch.as_tensor(qy[start : start + CHUNK], dtype=torch.long)
        for k in SHRINKS:
            w = shrink_weights(kde.counts.cpu(), k)
            ll[k][start : start + CHUNK] = location_loglik(w * f + (1 - w) * z, y).numpy()
    return {("inf" if math.isinf(k) else f"{k:g}"): balanced_mean(v, qy) for k, v in ll.items()}


def labelled_calib(ds: GeoDataset) -> tuple[Split, np.ndarray, np.ndarray] | None:
    """``(calib, labels, rows with a label and a location)``, or None without such a row."""
    if CALIB not in ds:
        return None
    calib = ds.split(CALIB)
    if calib.labels is None:
        return None
    labels = np.asarray(calib.labels)
    keep = (labels >= 0) & calib.has_location
    return (calib, labels, keep) if keep.any() else None


def check_kde_data(cfg: KDEConfig, ds: GeoDataset, ratio: float = 1.0) -> None:
    """Refuse, before any training, ``kde`` settings the data cannot serve.

    ``shrink: cv`` needs a labelled ``calib`` split; ``soft: cv`` and ``class_prior: cv`` score
    the fused prior on it, so with one they need its image probabilities of the run's ratio.

    Raises:
        ConfigError: ``shrink: cv`` without a labelled calib split (one line saying what to do).
        DatasetError: calib without the image probabilities a fused score needs.
    """
    if not cfg.enabled:
        return
    found = labelled_calib(ds)
    if cfg.shrink == "cv" and found is None:
        raise ConfigError(NO_CALIB)
    if found is not None and "cv" in (cfg.soft, cfg.class_prior):
        resolve_probs_key(found[0], "auto", ratio)
