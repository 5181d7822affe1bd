"""Frequency schedules shared by the multi-scale sinusoidal encoders (spec csp.md §2).

S = ``num_scales``. With the ``geometric`` schedule ``r_min_deg``/``r_max_deg`` act as
*timescales in degrees*: timescale_s = r_min · (r_max / r_min)^(s / (S − 1)) and
ω_s = 1 / timescale_s (radians per degree). The defaults are those of the CSP run scripts
(S = 32, r_min = 0.1°, r_max = 360°); the reference argparse defaults (r_min = 1e-6,
r_max = 1.0) are never used by the published experiments and are not adopted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from geocsp.errors import ConfigError

FreqSchedule = Literal["geometric", "nerf", "random"]
SCHEDULES: tuple[str, ...] = ("geometric", "nerf", "random")


def geometric_frequencies(num_scales: int, r_min_deg: float, r_max_deg: float) -> torch.Tensor:
    """Geometric schedule ω_s = 1 / (r_min · (r_max/r_min)^(s/(S−1))).

    Args:
        num_scales: S ≥ 1. With S = 1 the single timescale is ``r_min_deg``.
        r_min_deg: smallest timescale, degrees.
        r_max_deg: largest timescale, degrees.

    Returns:
        (S,) float64 frequencies, radians per degree, decreasing.
    """
    s = torch.arange(num_scales, dtype=torch.float64)
    frac = s / (num_scales - 1) if num_scales > 1 else torch.zeros_like(s)
    timescales = r_min_deg * (r_max_deg / r_min_deg) ** frac
    return 1.0 / timescales


def nerf_frequencies(num_scales: int) -> torch.Tensor:
    """NeRF schedule ω_s = π · 2^s, s = 0..S−1.

    Returns:
        (S,) float64 frequencies.
    """
    return math.pi * 2.0 ** torch.arange(num_scales, dtype=torch.float64)


def random_frequencies(num_scales: int, r_max_deg: float, seed: int) -> torch.Tensor:
    """Random schedule ω_s = U[0, 1) · r_max, drawn from a generator seeded with ``seed``.

    Returns:
        (S,) float64 frequencies.
    """
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(num_scales, generator=gen, dtype=torch.float64) * r_max_deg


@dataclass(frozen=True)
class FrequencyConfig:
    """Multi-scale frequency settings (spec csp.md §2 "Frequency list").

    Args:
        num_scales: S, number of frequencies.
        r_min_deg: smallest timescale in degrees (geometric schedule).
        r_max_deg: largest timescale in degrees (geometric), or the scale of the random
            schedule.
        freq_schedule: ``geometric`` (reference default), ``nerf`` or ``random``.
        seed: seed of the ``random`` schedule.

    Raises:
        ConfigError: if S < 1, r_min_deg ≤ 0, r_min_deg ≥ r_max_deg or the schedule is unknown.
    """

    num_scales: int = 32
    r_min_deg: float = 0.1
    r_max_deg: float = 360.0
    freq_schedule: FreqSchedule = "geometric"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_scales < 1:
            raise ConfigError(f"num_scales must be >= 1, got {self.num_scales}")
        if not self.r_min_deg > 0:
            raise ConfigError(f"r_min_deg must be > 0, got {self.r_min_deg}")
        if not self.r_min_deg < self.r_max_deg:
            raise ConfigError(
                f"r_min_deg ({self.r_min_deg}) must be smaller than r_max_deg ({self.r_max_deg})"
            )
        if self.freq_schedule not in SCHEDULES:
            raise ConfigError(
                f"freq_schedule must be one of {list(SCHEDULES)}, got {self.freq_schedule!r}"
            )

    def frequencies(self) -> torch.Tensor:
        """The (S,) float64 frequency vector for this configuration."""
        if self.freq_schedule == "geometric":
            return geometric_frequencies(self.num_scales, self.r_min_deg, self.r_max_deg)
        if self.freq_schedule == "nerf":
            return nerf_frequencies(self.num_scales)
        return random_frequencies(self.num_scales, self.r_max_deg, self.seed)
