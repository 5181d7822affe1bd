"""Frozen location embeddings as features: linear and MLP probes under random and spatial-block CV.

The RANGE / SatCLIP evaluation (``shared/spec/anchors.md`` §2.3): an encoder's embedding of
a point is frozen, and a small model trained on top of it predicts a real target
(:mod:`geocsp.experiments.probe_targets`). Each (encoder, target) pair is scored by

* a **linear** probe -- multinomial logistic regression (full-batch L-BFGS, L2 ``l2``) for
  classes, ridge regression (closed form, the same ``l2``) for values -- and
* an **MLP** probe -- one hidden ReLU layer, Adam, minibatches, a fixed number of epochs,

on standardised features (train-fold mean and sd), under two K-fold schemes side by side:
**random** folds and **spatial-block** folds (:func:`block_folds`: whole lon/lat blocks of
``block_deg`` go to one fold, so a test point's nearest training points are mostly a block
away). Accuracy for classes, R² (on the test fold's own mean) for values. The training-fold
majority class / mean is the ``baseline`` row. Everything runs with torch on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.experiments.probe_targets import ProbeTarget

CV_SCHEMES = ("random", "block")
PROBES = ("linear", "mlp")


@dataclass(frozen=True)
class ProbeSettings:
    """How every probe is trained and scored.

    Attributes:
        folds: K of both K-fold schemes.
        block_deg: side of the spatial blocks in degrees (lon and lat).
        l2: L2 penalty of the linear probes (per-sample loss + l2/2 · ‖W‖²).
        lbfgs_iters: L-BFGS iterations of the logistic probe.
        hidden: hidden units of the MLP probe.
        epochs: MLP training epochs.
        batch_size: MLP minibatch size.
        lr: MLP Adam learning rate.
        weight_decay: MLP Adam weight decay.
        seed: seed of the folds and of the MLP initialisation.
    """

    folds: int = 5
    block_deg: float = 15.0
    l2: float = 1e-3
    lbfgs_iters: int = 100
    hidden: int = 256
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


def random_folds(n: int, k: int, seed: int) -> np.ndarray:
    """(n,) fold index in [0, k) of a random K-fold split (fold sizes differ by at most 1).

    Args:
        n: number of points.
        k: number of folds, 2 <= k <= n.
        seed: permutation seed.

    Returns:
        (n,) int64 fold of each point.

    Raises:
        ConfigError: when k is outside [2, n].
    """
    if not 2 <= k <= n:
        raise ConfigError(f"--folds: expected 2 <= folds <= {n} points, got {k}")
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return fold


def block_ids(lonlat: np.ndarray, block_deg: float) -> np.ndarray:
    """(N,) id of the ``block_deg`` × ``block_deg`` lon/lat block of each point.

    Args:
        lonlat: (N, 2) degrees.
        block_deg: block side in degrees, in (0, 180].

    Returns:
        (N,) int64 block id (column-major over a grid anchored at (-180, -90)).

    Raises:
        ConfigError: on a block side outside (0, 180].
    """
    if not 0.0 < block_deg <= 180.0:
        raise ConfigError(f"--block-deg: expected a block side in (0, 180] degrees, got {block_deg}")
    n_lat = int(np.ceil(180.0 / block_deg))
    col = np.floor((np.asarray(lonlat[:, 0]) + 180.0) / block_deg).astype(np.int64)
    row = np.minimum(np.floor((np.asarray(lonlat[:, 1]) + 90.0) / block_deg).astype(np.int64), n_lat - 1)
    n_lon = int(np.ceil(360.0 / block_deg))
    return np.minimum(col, n_lon - 1) * n_lat + row


def block_folds(lonlat: np.ndarray, k: int, block_deg: float, seed: int) -> np.ndarray:
    """(N,) fold index of a spatial-block K-fold split: every block lies in exactly one fold.

    Blocks are taken largest first (random order among equal sizes) and each goes to the fold
    holding the fewest points so far, which balances the folds' sizes.

    Args:
        lonlat: (N, 2) degrees.
        k: number of folds (at most the number of non-empty blocks).
        block_deg: block side in degrees.
        seed: tie-breaking seed.

    Returns:
        (N,) int64 fold of each point.

    Raises:
        ConfigError: when fewer than ``k`` blocks hold points, or k < 2.
    """
    if k < 2:
        raise ConfigError(f"--folds: expected at least 2 folds, got {k}")
    ids = block_ids(lonlat, block_deg)
    blocks, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    if len(blocks) < k:
        raise ConfigError(f"--block-deg: {block_deg}° gives {len(blocks)} non-empty blocks, fewer than {k} folds")
    order = np.lexsort((np.random.default_rng(seed).random(len(blocks)), -counts))
    load, fold_of_block = np.zeros(k, dtype=np.int64), np.empty(len(blocks), dtype=np.int64)
    for b in order:
        f = int(np.argmin(load))
        fold_of_block[b] = f
        load[f] += counts[b]
    return fold_of_block[inverse]


def make_folds(lonlat: np.ndarray, scheme: str, settings: ProbeSettings) -> np.ndarray:
    """(N,) fold index of scheme ``random`` or ``block``.

    Args:
        lonlat: (N, 2) degrees.
        scheme: ``"random"`` or ``"block"``.
        settings: folds, block side and seed.

    Returns:
        (N,) int64 fold of each point.

    Raises:
        ConfigError: on an unknown scheme.
    """
    if scheme == "random":
        return random_folds(len(lonlat), settings.folds, settings.seed)
    if scheme == "block":
        return block_folds(lonlat, settings.folds, settings.block_deg, settings.seed)
    raise ConfigError(f"cv: expected one of {CV_SCHEMES}, got {scheme!r}")


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``pred == y``."""
    return float(np.mean(pred == y))


def r2_score(pred: np.ndarray, y: np.ndarray) -> float:
    """1 - SSE / SST with SST about the mean of ``y`` (negative when worse than that mean)."""
    sst = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / max(sst, 1e-12)


def _standardise(x_tr: torch.Tensor, x_te: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu, sd = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
    return (x_tr - mu) / sd, (x_te - mu) / sd


def _logistic(x: torch.Tensor, y: torch.Tensor, q: int, s: ProbeSettings) -> nn.Module:
    model = nn.Linear(x.shape[1], q)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=s.lbfgs_iters,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) + 0.5 * s.l2 * model.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


def _ridge(x: torch.Tensor, y: torch.Tensor, s: ProbeSettings) -> Callable[[torch.Tensor], torch.Tensor]:
    x64, y64 = x.double(), y.double()
    gram = x64.T @ x64 + s.l2 * len(x64) * torch.eye(x64.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(gram, x64.T @ (y64 - y64.mean()))
    return lambda z: (z.double() @ w + y64.mean()).float()


def _mlp(x: torch.Tensor, y: torch.Tensor, out: int, s: ProbeSettings, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], s.hidden), nn.ReLU(), nn.Linear(s.hidden, out))
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    classify = y.dtype == torch.int64
    for _ in range(s.epochs):
        for idx in torch.randperm(len(x), generator=gen).split(s.batch_size):
            pred = model(x[idx])
            loss = (nn.functional.cross_entropy(pred, y[idx]) if classify
                    else nn.functional.mse_loss(pred[:, 0], y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def fit_predict(probe: str, task: str, x_tr: torch.Tensor, y_tr: np.ndarray, x_te: torch.Tensor,
                n_classes: int, settings: ProbeSettings, seed: int = 0) -> np.ndarray:
    """Train one probe on a training fold and predict the test fold.

    Args:
        probe: ``"linear"``, ``"mlp"`` or ``"baseline"`` (train majority class / mean).
        task: ``"classification"`` or ``"regression"``.
        x_tr: (n, d) float32 training features (standardised here).
        y_tr: (n,) int64 classes or float64 values.
        x_te: (m, d) float32 test features.
        n_classes: number of classes (classification).
        settings: probe hyper-parameters.
        seed: MLP initialisation and minibatch seed.

    Returns:
        (m,) predicted classes (int64) or values (float64).

    Raises:
        ConfigError: on an unknown probe or task.
    """
    if task not in ("classification", "regression"):
        raise ConfigError(f"task: expected classification or regression, got {task!r}")
    cls = task == "classification"
    if probe == "baseline":
        fill = np.bincount(y_tr, minlength=n_classes).argmax() if cls else float(np.mean(y_tr))
        return np.full(len(x_te), fill)
    if probe not in PROBES:
        raise ConfigError(f"--probes: expected some of {PROBES}, got {probe!r}")
    xs_tr, xs_te = _standardise(x_tr, x_te)
    mu, sd = (0.0, 1.0) if cls else (float(np.mean(y_tr)), float(np.std(y_tr)) or 1.0)
    yt = torch.as_tensor(y_tr) if cls else torch.as_tensor((y_tr - mu) / sd, dtype=torch.float32)
    if probe == "linear":
        if cls:
            model = _logistic(xs_tr, yt, n_classes, settings)
            with torch.no_grad():
                return model(xs_te).argmax(1).numpy()
        return _ridge(xs_tr, yt, settings)(xs_te).numpy().astype(np.float64) * sd + mu
    net = _mlp(xs_tr, yt, n_classes if cls else 1, settings, seed)
    with torch.no_grad():
        out = net(xs_te)
    return out.argmax(1).numpy() if cls else out[:, 0].numpy().astype(np.float64) * sd + mu


def cross_validate(features: torch.Tensor, target: ProbeTarget, folds: np.ndarray, probe: str,
                   settings: ProbeSettings) -> dict[str, Any]:
    """Score one probe over the folds of one scheme.

    Args:
        features: (N, d) float32 frozen embeddings of ``target.lonlat``.
        target: the target (labels, task).
        folds: (N,) fold index of every point.
        probe: ``"linear"``, ``"mlp"`` or ``"baseline"``.
        settings: probe hyper-parameters.

    Returns:
        ``{"metric", "mean", "sd", "folds": [per-fold score], "seconds"}``; the metric is
        ``accuracy`` or ``r2``.
    """
    t0 = time.perf_counter()
    cls = target.task == "classification"
    scores = []
    for f in range(int(folds.max()) + 1):
        te = folds == f
        tr = ~te
        pred = fit_predict(probe, target.task, features[torch.as_tensor(tr)], target.y[tr],
                           features[torch.as_tensor(te)], len(target.classes), settings, settings.seed + f)
        scores.append(accuracy(pred, target.y[te]) if cls else r2_score(pred, target.y[te]))
    s = np.asarray(scores)
    return {"metric": "accuracy" if cls else "r2", "mean": float(s.mean()),
            "sd": float(s.std(ddof=1)) if len(s) > 1 else 0.0, "folds": [float(v) for v in s],
            "seconds": round(time.perf_counter() - t0, 3)}
