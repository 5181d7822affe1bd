"""Statistics over the seeds of a protocol: paired differences with t confidence intervals.

Two methods run with the same seeds share the seed's label subset, image classifier and
world, so their per-seed difference removes that shared noise; the interval is the
Student-t interval of the mean difference, ``mean ± t_{1-α/2, n-1} · sd / √n`` with the
sample standard deviation (ddof = 1). One seed gives a difference but no interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from geocsp.errors import ConfigError


def paired_ci(diffs: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of paired per-seed differences and its Student-t confidence interval.

    Args:
        diffs: per-seed differences (method − baseline), at least one.
        level: confidence level in (0, 1).

    Returns:
        ``{"n", "mean", "sd", "half_width", "low", "high"}``; ``sd``, ``half_width``, ``low``
        and ``high`` are None for a single seed (no interval from one seed).

    Raises:
        ConfigError: on no differences or a level outside (0, 1).

    >>> r = paired_ci([1.0, 2.0, 3.0])
    >>> r["mean"], r["sd"], round(r["half_width"], 3)
    (2.0, 1.0, 2.484)
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level: expected a confidence level in (0, 1), got {level}")
    d = np.asarray(list(diffs), dtype=np.float64)
    if d.size == 0:
        raise ConfigError("diffs: expected at least one paired difference")
    mean = float(d.mean())
    if d.size == 1:
        return {"n": 1, "mean": mean, "sd": None, "half_width": None, "low": None, "high": None}
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2.0, d.size - 1)) * sd / math.sqrt(d.size)
    return {"n": int(d.size), "mean": mean, "sd": sd, "half_width": half, "low": mean - half, "high": mean + half}
