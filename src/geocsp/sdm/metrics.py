"""Presence/absence metrics for species distribution models: AUC-ROC and average precision."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc_roc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U; ties count one half).

    Args:
        y_true: (N,) 0/1 labels (1 = presence).
        score: (N,) suitability scores, higher = more suitable.

    Returns:
        AUC in [0, 1], or NaN when only one class is present.

    >>> auc_roc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    >>> auc_roc(np.array([0, 1]), np.array([0.5, 0.5]))
    0.5
    """
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision (area under the step precision–recall curve, as scikit-learn).

    Tied scores are processed as one threshold.

    >>> round(average_precision(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])), 6)
    0.833333
    """
    y = np.asarray(y_true).astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return float("nan")
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each tie group
    precision = tp[last] / (tp[last] + fp[last])
    recall = tp[last] / n_pos
    d_recall = np.diff(np.r_[0.0, recall])
    return float(np.sum(d_recall * precision))


def per_species_scores(
    y_true: np.ndarray, scores: np.ndarray, species: list[str]
) -> dict[str, dict[str, float]]:
    """AUC and AP per species column.

    Args:
        y_true: (N, S) 0/1 presence matrix at evaluation sites.
        scores: (N, S) predicted suitability.
        species: S names.

    Returns:
        {species: {"auc": float, "ap": float, "n_pos": int, "n_neg": int}}; species with no
        presence or no absence at the sites get NaN metrics.
    """
    out = {}
    for j, name in enumerate(species):
        y = y_true[:, j]
        out[name] = {
            "auc": auc_roc(y, scores[:, j]),
            "ap": average_precision(y, scores[:, j]),
            "n_pos": int(np.sum(y)),
            "n_neg": int(np.sum(1 - y)),
        }
    return out


def summarize(per_species: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean AUC/AP over the species where they are defined, and how many that is."""
    aucs = np.array([v["auc"] for v in per_species.values()], dtype=float)
    aps = np.array([v["ap"] for v in per_species.values()], dtype=float)
    ok = np.isfinite(aucs)
    return {
        "mean_auc": float(np.mean(aucs[ok])) if ok.any() else float("nan"),
        "mean_ap": float(np.mean(aps[np.isfinite(aps)])) if np.isfinite(aps).any() else float("nan"),
        "n_species_scored": int(ok.sum()),
        "n_species": len(per_species),
    }
