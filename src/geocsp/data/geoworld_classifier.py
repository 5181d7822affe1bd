"""GeoWorld's image classifier: a linear softmax head trained on image features.

This stands for the image network of the paper's protocol (spec §6): an InceptionV3 fine-tuned
on all of iNat2018 (the ``default`` / 100 % probabilities) or on the λ-labelled subset only
(``fewshot`` probabilities, one set per ratio). GeoWorld trains a real classifier on the
features of the stratified subset and stores its softmax on the validation split, so the
image-only accuracy, its calibration and its few-shot degradation are measured, never
hand-made.

The head is initialised at the nearest-class-mean solution (a Gaussian class-conditional
model with shared isotropic variance; W_c = μ_c/σ², b_c = log π_c − ‖μ_c‖²/(2σ²)) and then
trained with minibatch Adam on the cross-entropy plus decoupled weight decay. Minibatches
gather rows from the (possibly memory-mapped) feature matrix, so the training subset is
never copied whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_PREDICT_ROWS = 8192


@dataclass(frozen=True)
class ClassifierSettings:
    """Optimisation settings of the linear head (validated by ``GeoWorldConfig``).

    Args:
        epochs: passes over the training subset.
        min_steps: lower bound on the number of Adam steps (small subsets still converge).
        batch_size: rows per step (the whole subset when it is smaller).
        lr: Adam learning rate.
        weight_decay: decoupled (AdamW) weight decay.
    """

    epochs: int = 30
    min_steps: int = 200
    batch_size: int = 1024
    lr: float = 0.01
    weight_decay: float = 1e-4

    def num_steps(self, n: int) -> int:
        """Adam steps for a subset of ``n`` rows."""
        return max(self.min_steps, self.epochs * math.ceil(n / self.batch_size))


def _class_mean_init(feats: np.ndarray, rows: np.ndarray, labels: np.ndarray, q: int) -> tuple[Any, Any]:
    """Nearest-class-mean logits (W (D, Q), b (Q,)) from one streaming pass over ``rows``."""
    import torch

    d = feats.shape[1]
    sums = np.zeros((q, d), np.float64)
    sq = 0.0
    for start in range(0, len(rows), _PREDICT_ROWS):
        r = rows[start : start + _PREDICT_ROWS]
        x = np.asarray(feats[r], dtype=np.float64)
        np.add.at(sums, labels[r], x)
        sq += float((x * x).sum())
    counts = np.bincount(labels[rows], minlength=q).astype(np.float64)
    present = counts > 0
    means = np.zeros_like(sums)
    means[present] = sums[present] / counts[present, None]
    # within-class variance per dimension: E||x||² - Σ_c n_c ||μ_c||², pooled
    within = sq - float((counts[:, None] * means**2).sum())
    dof = len(rows) - int(present.sum())  # unbiased: one mean per present class
    var = within / (dof * d) if dof > 0 else sq / (len(rows) * d)
    var = max(var, 1e-6)
    prior = np.where(present, counts / counts.sum(), 1e-12)
    w = means.T / var
    b = np.log(prior) - (means**2).sum(1) / (2 * var)
    b[~present] = -30.0
    return torch.tensor(w, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)


def train_linear_classifier(
    feats: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    settings: ClassifierSettings,
    seed: int,
    device: str = "cpu",
) -> tuple[Any, Any]:
    """Train a softmax-regression head on ``feats[rows]``.

    Args:
        feats: (N, D) float features (array or memmap).
        rows: (n,) int64 training row indices into ``feats``.
        labels: (N,) int64 class indices (only ``labels[rows]`` is used).
        num_classes: Q.
        settings: optimisation settings.
        seed: seeds the torch Generator that draws the minibatches.
        device: torch device to train on.

    Returns:
        (W (D, Q), b (Q,)) float32 CPU tensors; logits = x @ W + b.
    """
    import torch

    w0, b0 = _class_mean_init(feats, rows, labels, num_classes)
    w = w0.to(device).requires_grad_(True)
    b = b0.to(device).requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=settings.lr)
    gen = torch.Generator().manual_seed(int(seed))
    n = len(rows)
    bs = min(settings.batch_size, n)
    whole = None
    if n <= bs:  # full batch: gather once
        whole = (
            torch.from_numpy(np.asarray(feats[rows], dtype=np.float32)).to(device),
            torch.from_numpy(labels[rows]).to(device),
        )
    perm, pos = torch.randperm(n, generator=gen).numpy(), 0
    for _ in range(settings.num_steps(n)):
        if whole is not None:
            x, y = whole
        else:
            if pos + bs > n:
                perm, pos = torch.randperm(n, generator=gen).numpy(), 0
            r = np.sort(rows[perm[pos : pos + bs]])
            pos += bs
            x = torch.from_numpy(np.asarray(feats[r], dtype=np.float32)).to(device)
            y = torch.from_numpy(labels[r]).to(device)
        loss = torch.nn.functional.cross_entropy(x @ w + b, y)
        loss = loss + 0.5 * settings.weight_decay * (w * w).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return w.detach().cpu(), b.detach().cpu()


def predict_probs(feats: np.ndarray, w: Any, b: Any, topk: int = 0, device: str = "cpu") -> Any:
    """Softmax probabilities of the head on every row of ``feats``.

    Args:
        feats: (N, D) features.
        w: (D, Q) weights; b: (Q,) bias.
        topk: 0 for a dense result; k > 0 keeps each row's k largest probabilities,
            renormalised to sum to 1, as a scipy CSR matrix (the sparse prediction files of
            the paper's data release).
        device: torch device.

    Returns:
        (N, Q) float32 dense array, or a scipy CSR matrix when ``topk`` > 0.
    """
    import scipy.sparse
    import torch

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
            vals = (vals / vals.sum(1, keepdim=True)).float().cpu().numpy()
            rows = np.repeat(np.arange(len(vals)), topk)
            parts.append(
                scipy.sparse.csr_matrix(
                    (vals.ravel(), (rows, idx.cpu().numpy().ravel())), shape=p.shape, dtype=np.float32
                )
            )
    if parts:
        return scipy.sparse.vstack(parts, format="csr")
    return np.concatenate(dense, axis=0)


def ratio_key(ratio: float) -> str:
    """Probability-set key of a label ratio, e.g. ``0.05 -> "ratio0.050"``."""
    return f"ratio{float(ratio):.3f}"


def classifier_probs(
    train_feats: np.ndarray,
    train_labels: np.ndarray,
    val_feats: np.ndarray,
    num_classes: int,
    ratios: tuple[float, ...],
    settings: ClassifierSettings,
    seed: int,
    topk: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Validation probabilities of classifiers trained on stratified λ-subsets of train.

    For each λ, the rows are ``stratified_subset(train_labels, λ, seed)`` (spec §5), the
    head is trained on them and applied to ``val_feats``. ``"default"`` is the λ = 1
    classifier (trained even when 1.0 is not among ``ratios``).

    Args:
        train_feats: (N, D) train features; train_labels: (N,) int64.
        val_feats: (M, D) validation features.
        num_classes: Q.
        ratios: label ratios in (0, 1].
        settings: optimisation settings.
        seed: subset seed; the head of ratio i uses seed + i + 1 for its minibatches.
        topk: 0 = dense probabilities, k > 0 = sparse top-k (see :func:`predict_probs`).
        device: torch device.

    Returns:
        Key (``"ratio0.050"``..., ``"default"``) -> (M, Q) probabilities.
    """
    from geocsp.data.splits import stratified_subset

    out: dict[str, Any] = {}
    for i, ratio in enumerate(sorted(set(ratios) | {1.0})):
        rows = stratified_subset(train_labels, ratio, seed)
        w, b = train_linear_classifier(
            train_feats, rows, train_labels, num_classes, settings, seed + i + 1, device
        )
        probs = predict_probs(val_feats, w, b, topk, device)
        if ratio in ratios:
            out[ratio_key(ratio)] = probs
        if ratio == 1.0:
            out["default"] = probs
    return out
