"""Cyclic day-of-year encoding, appended to position encodings as ``extra`` features."""

from __future__ import annotations

import math

import torch

DAYS_PER_YEAR = 365.25


def encode_day_of_year(doy: torch.Tensor) -> torch.Tensor:
    """Encode the day of the year on the unit circle.

    Args:
        doy: (B,) day of the year (1-based, fractional allowed); NaN marks a missing date.

    Returns:
        (B, 2) float features [sin(2π·doy/365.25), cos(2π·doy/365.25)]; rows with a missing
        date are zeros (the centre of the circle, equidistant from every date).

    >>> encode_day_of_year(torch.tensor([0.0, float("nan")])).tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """
    if not doy.is_floating_point():
        doy = doy.to(torch.get_default_dtype())
    missing = torch.isnan(doy)
    phase = torch.where(missing, 0.0, doy) * (2.0 * math.pi / DAYS_PER_YEAR)  # no NaN gradients
    out = torch.stack((torch.sin(phase), torch.cos(phase)), dim=-1)
    return torch.where(missing[:, None], 0.0, out)
