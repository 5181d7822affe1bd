"""Shared fixtures-as-functions for the objective tests: tiny encoders and NumPy references."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from geocsp.objectives import PretrainBatch


class RecordingEncoder(nn.Module):
    """Tiny location encoder (lon/lat degrees -> d) that records every call.

    ``rows`` lists the number of rows of each call; ``outputs`` the detached outputs.
    """

    def __init__(self, d: int = 8, dropout: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, d))
        self.rows: list[int] = []
        self.outputs: list[np.ndarray] = []

    def forward(self, lonlat: Tensor) -> Tensor:
        out = self.net(lonlat / torch.tensor([180.0, 90.0], dtype=lonlat.dtype))
        self.rows.append(lonlat.shape[0])
        self.outputs.append(out.detach().double().numpy())
        return out


def make_batch(b: int = 6, dim: int = 5, c: int = 2, seed: int = 0) -> PretrainBatch:
    """Random batch: (b, 2) degrees, (b, dim) features, (b, c, 2) negatives (None if c = 0)."""
    g = torch.Generator().manual_seed(seed)

    def lonlat(*shape: int) -> Tensor:
        u = torch.rand(*shape, 2, generator=g)
        return u * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])

    neg = lonlat(b, c) if c else None
    return PretrainBatch(lonlat(b), torch.randn(b, dim, generator=g), neg)


def np_normalize(x: np.ndarray) -> np.ndarray:
    """L2-normalise the last axis, float64."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_ce(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean softmax cross-entropy, float64, row by row."""
    losses = []
    for row, t in zip(np.asarray(logits, np.float64), targets, strict=True):
        m = row.max()
        losses.append(m + np.log(np.exp(row - m).sum()) - row[t])
    return float(np.mean(losses))


def np_sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def np_neglog(p: np.ndarray) -> np.ndarray:
    """The references' -log(p + 1e-5), float64."""
    return -np.log(np.asarray(p, np.float64) + 1e-5)
