"""Shared synthetic cases for the evaluation tests: not a test module."""

from __future__ import annotations

import numpy as np


def make_case(seed: int = 0, n: int = 257, q: int = 20):
    rng = np.random.default_rng(seed)
    img = rng.dirichlet(np.full(q, 0.3), size=n).astype(np.float32)
    loc = rng.random((n, q)).astype(np.float32)
    labels = rng.integers(0, q, n)
    has = rng.random(n) < 0.8
    loc[~has] = np.nan  # rows without a location may hold anything
    return img, loc, labels, has
