"""fuse / fused_log_scores against float64 NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.prior.fusion import fuse, fused_log_scores


def case(seed: int = 0, n: int = 64, q: int = 9):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(n, q, generator=g, dtype=torch.float64)
    loc = torch.rand(n, q, generator=g, dtype=torch.float64)
    has = torch.rand(n, generator=g) < 0.7
    return img, loc, has


@pytest.mark.parametrize("beta", [0.0, 0.25, 1.0, 2.0])
def test_fuse_matches_numpy(beta: float) -> None:
    img, loc, has = case()
    ref = img.numpy().copy()
    h = has.numpy()
    ref[h] = img.numpy()[h] * np.power(loc.numpy()[h], beta)
    np.testing.assert_allclose(fuse(img, loc, has, beta).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(fused_log_scores(img, loc, has, beta).exp().numpy(), ref, rtol=1e-12)
    assert fuse(img.float(), loc.float(), has, beta).dtype == torch.float32


def test_rows_without_location_ignore_nan() -> None:
    img, loc, has = case(1)
    loc[~has] = float("nan")
    out = fuse(img, loc, has, beta=1.5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[~has], img[~has])
    assert not torch.equal(out[has], img[has])


def test_beta_zero_with_zero_prior_is_image() -> None:
    img, loc, has = case(2)
    loc[:, 0] = 0.0
    torch.testing.assert_close(fuse(img, loc, torch.ones_like(has), 0.0), img)


def test_errors() -> None:
    img, loc, has = case()
    with pytest.raises(ConfigError, match=r"beta: expected a finite value >= 0, got -0\.5"):
        fuse(img, loc, has, -0.5)
    with pytest.raises(ConfigError, match="got nan"):
        fuse(img, loc, has, float("nan"))
