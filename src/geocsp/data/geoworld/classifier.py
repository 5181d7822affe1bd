"""GeoWorld's image classifier: a linear softmax head trained on image features.

This stands for the image network of the paper's protocol (spec §6): an InceptionV3 fine-tuned
on all of iNat2018 (the ``default`` / 100 % probabilities) or on the λ-labelled subset only
(``fewshot`` probabilities, one set per ratio). GeoWorld trains a real classifier on the
features of the stratified subset and stores its softmax on the validation split, so the
image-only accuracy, its calibration and its few-shot degradation are measured, never
hand-made.

The head minimises the mean cross-entropy plus λ/2 ‖W‖² on centred features: full-batch
L-BFGS from zero for subsets that fit in memory (small and default worlds), minibatch Adam
from the nearest-class-mean solution (W_c = μ_c/σ², b_c = log π_c − ‖μ_c‖²/(2σ²)) for the
inat-scale world, where minibatches are gathered from the memory-mapped feature matrix so
the training subset is never copied whole.

scipy's BLAS is loaded with this module, before :func:`_single_threaded` limits it to one
thread (a library first loaded inside the limit would escape it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import torch
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from geocsp.data.format import ratio_probs_key
from geocsp.data.splits import stratified_subset

_PREDICT_ROWS = 8192


@dataclass(frozen=True)
class ClassifierSettings:
    """Optimisation settings of the linear head (validated by ``GeoWorldConfig``).

    Args:
        full_batch_rows: subsets up to this many rows are fitted full-batch with L-BFGS
            (to convergence); larger ones with minibatch Adam.
        lbfgs_iters: L-BFGS iterations (full-batch path).
        epochs: passes over the subset (minibatch path).
        batch_size: rows per Adam step.
        lr: Adam learning rate.
        weight_decay: λ of the L2 penalty λ/2 ‖W‖² added to the mean cross-entropy.
    """

    full_batch_rows: int = 65536
    lbfgs_iters: int = 50
    epochs: int = 2
    batch_size: int = 4096
    lr: float = 1e-3
    weight_decay: float = 1e-3


def _class_mean_init(feats: np.ndarray, rows: np.ndarray, labels: np.ndarray, q: int,
                     center: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-class-mean logits (W (D, Q), b (Q,)) of centred features, one streaming pass."""
    d = feats.shape[1]
    sums = np.zeros((q, d), np.float64)
    sq = 0.0
    for start in range(0, len(rows), _PREDICT_ROWS):
        r = rows[start : start + _PREDICT_ROWS]
        x = np.asarray(feats[r], dtype=np.float64) - center
        np.add.at(sums, labels[r], x)
        sq += float((x * x).sum())
    counts = np.bincount(labels[rows], minlength=q).astype(np.float64)
    present = counts > 0
    means = np.zeros_like(sums)
    means[present] = sums[present] / counts[present, None]
    within = sq - float((counts[:, None] * means**2).sum())  # pooled within-class sum of squares
    dof = len(rows) - int(present.sum())  # unbiased: one mean per present class
    var = max(within / (dof * d) if dof > 0 else sq / (len(rows) * d), 1e-6)
    prior = np.where(present, counts / counts.sum(), 1e-12)
    b = np.log(prior) - (means**2).sum(1) / (2 * var)
    return torch.tensor(means.T / var, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)


def _fit_lbfgs(x: np.ndarray, y: np.ndarray, q: int, settings: ClassifierSettings) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch L-BFGS (scipy) on mean CE + λ/2 ‖W‖², from zero; x centred (n, D)."""
    n, d = x.shape
    onehot = np.zeros((n, q), np.float32)
    onehot[np.arange(n), y] = 1.0

    x32 = x.astype(np.float32)  # float32 products, float64 parameters and sums

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * q].reshape(d, q), theta[d * q :]
        z = x32 @ w.astype(np.float32) + b.astype(np.float32)
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float(log_p[np.arange(n), y].astype(np.float64).sum()) / n
        loss += 0.5 * settings.weight_decay * float((w * w).sum())
        g = (np.exp(log_p) - onehot) / np.float32(n)
        grad_w = (x32.T @ g).astype(np.float64) + settings.weight_decay * w
        return loss, np.concatenate([grad_w.ravel(), g.sum(axis=0, dtype=np.float64)])

    res = minimize(fun, np.zeros(d * q + q), jac=True, method="L-BFGS-B",
                   options={"maxiter": settings.lbfgs_iters, "maxcor": 20})
    return res.x[: d * q].reshape(d, q), res.x[d * q :]


def _rows_tensor(feats: np.ndarray, rows: np.ndarray, center: np.ndarray, device: str) -> torch.Tensor:
    """(len(rows), D) float32 tensor of the centred rows ``feats[rows] - center`` on ``device``."""
    return torch.from_numpy(np.asarray(feats[rows], np.float32) - center.astype(np.float32)).to(device)


def train_linear_classifier(
    feats: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    settings: ClassifierSettings,
    seed: int,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train a softmax-regression head on ``feats[rows]`` (L2-penalised cross-entropy).

    Features are centred on the subset mean. Subsets of at most ``full_batch_rows`` rows
    start from zero and are fitted with full-batch L-BFGS (scipy; a convex problem,
    so the result is the penalised optimum); larger ones start from the nearest-class-mean solution and
    take ``epochs`` passes of minibatch Adam, gathering each minibatch from ``feats``.

    Args:
        feats: (N, D) float features (array or memmap).
        rows: (n,) int64 training row indices into ``feats``.
        labels: (N,) int64 class indices (only ``labels[rows]`` is used).
        num_classes: Q.
        settings: optimisation settings.
        seed: seeds the torch Generator that draws the minibatches (minibatch path).
        device: torch device to train on.

    Returns:
        (W (D, Q), b (Q,)) float32 CPU tensors; logits = x @ W + b on uncentred x.
    """
    center = np.zeros(feats.shape[1])
    for start in range(0, len(rows), _PREDICT_ROWS):
        center += np.asarray(feats[rows[start : start + _PREDICT_ROWS]], np.float64).sum(0)
    center /= len(rows)
    y_all = torch.from_numpy(labels)
    n = len(rows)

    if n <= settings.full_batch_rows:
        w_np, b_np = _fit_lbfgs(np.asarray(feats[rows], np.float64) - center, labels[rows],
                                num_classes, settings)
        w, b = torch.from_numpy(w_np.astype(np.float32)), torch.from_numpy(b_np.astype(np.float32))
    else:
        w0, b0 = _class_mean_init(feats, rows, labels, num_classes, center)
        w, b = w0.to(device).requires_grad_(True), b0.to(device).requires_grad_(True)
        adam = torch.optim.Adam([w, b], lr=settings.lr)
        gen = torch.Generator().manual_seed(int(seed))
        for _ in range(settings.epochs):
            perm = rows[torch.randperm(n, generator=gen).numpy()]
            for s in range(0, n - settings.batch_size + 1, settings.batch_size):
                r = np.sort(perm[s : s + settings.batch_size])
                x = _rows_tensor(feats, r, center, device)
                loss = torch.nn.functional.cross_entropy(x @ w + b, y_all[r].to(device))
                loss = loss + 0.5 * settings.weight_decay * (w * w).sum()
                adam.zero_grad(set_to_none=True)
                loss.backward()
                adam.step()
    w, b = w.detach().cpu(), b.detach().cpu()
    return w, b - torch.from_numpy(center.astype(np.float32)) @ w


def predict_probs(feats: np.ndarray, w: torch.Tensor, b: torch.Tensor, topk: int = 0,
                  device: str = "cpu") -> Any:
    """Softmax probabilities of the head on every row of ``feats``.

    Args:
        feats: (N, D) features.
        w: (D, Q) weights.
        b: (Q,) bias.
        topk: 0 for a dense result; k > 0 keeps each row's k largest probabilities,
            renormalised to sum to 1, as a scipy CSR matrix (the sparse prediction files of
            the paper's data release).
        device: torch device.

    Returns:
        (N, Q) float32 dense array, or a scipy CSR matrix when ``topk`` > 0.
    """
    w, b = w.to(device), b.to(device)
    dense, parts = [], []
    with torch.no_grad():
        for start in range(0, feats.shape[0], _PREDICT_ROWS):
            x = torch.from_numpy(np.asarray(feats[start : start + _PREDICT_ROWS], np.float32))
            p = torch.softmax((x.to(device) @ w + b).double(), dim=1)
            if topk <= 0 or topk >= p.shape[1]:
                dense.append(p.float().cpu().numpy())
                continue
            vals, idx = torch.topk(p, topk, dim=1)
            top = (vals / vals.sum(1, keepdim=True)).float().cpu().numpy()
            rows = np.repeat(np.arange(len(top)), topk)
            parts.append(
                scipy.sparse.csr_matrix(
                    (top.ravel(), (rows, idx.cpu().numpy().ravel())), shape=p.shape, dtype=np.float32
                )
            )
    if parts:
        return scipy.sparse.vstack(parts, format="csr")
    return np.concatenate(dense, axis=0)


def classifier_probs_many(
    train_feats: np.ndarray,
    train_labels: np.ndarray,
    eval_feats: Sequence[np.ndarray],
    num_classes: int,
    ratios: tuple[float, ...],
    settings: ClassifierSettings,
    seed: int,
    topk: int | Sequence[int] = 0,
    device: str = "cpu",
    oof: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Probabilities on several splits of classifiers trained on stratified λ-subsets of train.

    For each λ, the rows are ``stratified_subset(train_labels, λ, seed)`` (spec §5), the
    head is trained once on them and applied to every matrix of ``eval_feats`` in turn
    (each predicted on its own, so a split's probabilities do not depend on the others).
    ``"default"`` is the λ = 1 classifier (trained even when 1.0 is not among ``ratios``).

    Args:
        train_feats: (N, D) train features.
        train_labels: (N,) int64 train class indices.
        eval_feats: (M_j, D) features of each split to predict (val, calib, ...).
        num_classes: Q.
        ratios: label ratios in (0, 1].
        settings: optimisation settings.
        seed: subset seed; the head of ratio i uses seed + i + 1 for its minibatches.
        topk: 0 = dense probabilities, k > 0 = sparse top-k (see :func:`predict_probs`);
            one value for every matrix, or one per matrix of ``eval_feats``.
        device: torch device.
        oof: ``(j, K)``: matrix ``j`` of ``eval_feats`` is ``train_feats`` itself, and the
            rows each head was trained on get out-of-fold probabilities there
            (:func:`out_of_fold`, K folds); None = in-sample everywhere.

    Returns:
        One dict per matrix of ``eval_feats``: key (``"ratio0.050"``..., ``"default"``) ->
        (M_j, Q) probabilities.
    """
    out: list[dict[str, Any]] = [{} for _ in eval_feats]
    topks = [int(topk)] * len(eval_feats) if isinstance(topk, int) else [int(k) for k in topk]
    if len(topks) != len(eval_feats):
        raise ValueError(f"topk: expected one value per matrix ({len(eval_feats)}), got {len(topks)}")
    with _single_threaded(device):
        for i, ratio in enumerate(sorted(set(ratios) | {1.0})):
            rows = stratified_subset(train_labels, ratio, seed)
            w, b = train_linear_classifier(
                train_feats, rows, train_labels, num_classes, settings, seed + i + 1, device
            )
            for j, (feats, probs_of, k) in enumerate(zip(eval_feats, out, topks, strict=True)):
                probs = predict_probs(feats, w, b, k, device)
                if oof is not None and j == oof[0] and oof[1] >= 2:
                    probs = out_of_fold(probs, train_feats, rows, train_labels, num_classes, settings,
                                        seed + i + 1, oof[1], k, device)
                if ratio in ratios:
                    probs_of[ratio_probs_key(ratio)] = probs
                if ratio == 1.0:
                    probs_of["default"] = probs
    return out


def out_of_fold(probs: Any, train_feats: np.ndarray, rows: np.ndarray, train_labels: np.ndarray, num_classes: int,
                settings: ClassifierSettings, seed: int, folds: int, topk: int = 0, device: str = "cpu") -> Any:
    """``probs`` (every train row) with the head's own training ``rows`` scored out of fold.

    ``rows`` are dealt into ``folds`` folds in a seeded random order; for each fold a head
    with the same settings is trained on the other folds and scores that fold's rows, which
    replace the in-sample ones. Other rows are unchanged.

    Args:
        probs: (N, Q) dense array or CSR matrix of the head trained on all ``rows``.
        train_feats: (N, D) train features.
        rows: the head's training rows.
        train_labels: (N,) class indices.
        num_classes: Q.
        settings: the head's optimisation settings.
        seed: seed of the fold order (and of the fold heads' minibatches).
        folds: K >= 2 (fewer when ``rows`` has fewer rows).
        topk: as in :func:`predict_probs` (must match ``probs``).
        device: torch device.

    Returns:
        The same kind of matrix as ``probs``.
    """
    k = min(folds, len(rows))
    order = np.random.default_rng(seed).permutation(len(rows))
    parts, where = [], []
    for f in range(k):
        held = np.sort(rows[order[f::k]])
        fit = np.sort(rows[np.setdiff1d(order, order[f::k])])
        w, b = train_linear_classifier(train_feats, fit, train_labels, num_classes, settings, seed + 7919 * (f + 1),
                                       device)
        parts.append(predict_probs(np.asarray(train_feats[held]), w, b, topk, device))
        where.append(held)
    if scipy.sparse.issparse(probs):
        index = np.arange(probs.shape[0])
        offset = probs.shape[0]
        for held in where:
            index[held] = offset + np.arange(len(held))
            offset += len(held)
        return scipy.sparse.vstack([probs, *parts], format="csr")[index]
    out = np.array(probs, copy=True)
    for held, part in zip(where, parts, strict=True):
        out[held] = part
    return out


@contextlib.contextmanager
def _single_threaded(device: str) -> Iterator[None]:
    """One BLAS/torch thread while the classifiers train on a CPU.

    L-BFGS amplifies the last-bit differences of multi-threaded reductions, so with
    several threads the val probabilities of a (config, seed) would depend on the core
    count; with one they are the same on every run of the same CPU type.
    """
    if not str(device).startswith("cpu"):
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(old)


