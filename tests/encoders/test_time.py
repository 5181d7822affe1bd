"""Day-of-year encoding."""

from __future__ import annotations

import math

import numpy as np
import torch

from geocsp.encoders import encode_day_of_year


def test_matches_formula_and_missing_is_zero() -> None:
    doy = torch.tensor([1.0, 91.3, 182.625, 365.25, float("nan")])
    out = encode_day_of_year(doy)
    ref = np.array(
        [
            [math.sin(2 * math.pi * d / 365.25), math.cos(2 * math.pi * d / 365.25)]
            for d in [1.0, 91.3, 182.625, 365.25]
        ]
    )
    np.testing.assert_allclose(out[:4].numpy(), ref, atol=1e-6)
    assert out[4].tolist() == [0.0, 0.0]
    assert out.shape == (5, 2) and out.dtype == torch.float32


def test_cyclic_and_integer_input() -> None:
    out = encode_day_of_year(torch.tensor([0, 365]))
    assert out.dtype == torch.float32
    # Dec 31 is next to Jan 1 on the circle
    assert torch.linalg.norm(out[0] - out[1]) < 0.02


def test_no_nan_gradient_through_missing_rows() -> None:
    doy = torch.tensor([10.0, float("nan")], requires_grad=True)
    encode_day_of_year(doy).sum().backward()
    assert torch.isfinite(doy.grad[0]) and doy.grad[1] == 0
