"""fuse / fused_log_scores / the calibrated family against float64 NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.prior.fusion import (
    Fusion,
    calibrated_log_scores,
    combine_log_scores,
    fuse,
    fused_log_scores,
    prior_log_term,
)


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


# --- the calibrated family: log P(y|I) + beta * log(eps + (1 - eps) P(y|x)) -------------------

def calibrated_reference(img, loc, has, beta, eps) -> np.ndarray:
    """float64 NumPy reference of the calibrated score."""
    img, loc, has = (np.asarray(a, np.float64) for a in (img, loc, has))
    out = np.log(img)
    h = has.astype(bool)
    if beta != 0:
        out[h] += beta * np.log(eps + (1 - eps) * loc[h])
    return out


@pytest.mark.parametrize("beta", [0.0, 0.01, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("eps", [0.0, 1e-3, 0.2, 1.0])
def test_calibrated_matches_numpy(beta: float, eps: float) -> None:
    img, loc, has = case(3)
    loc[~has] = float("nan")
    got = calibrated_log_scores(img, loc, has, beta, eps)
    assert got.dtype == torch.float64 and torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), calibrated_reference(img, loc, has, beta, eps),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, Fusion("calibrated", beta, eps).log_scores(img, loc, has))
    term = prior_log_term(loc, has, eps)
    torch.testing.assert_close(combine_log_scores(img.log(), term, beta), got, rtol=1e-12, atol=1e-12)
    assert (term[~has] == 0).all()  # rows without a location: the image alone


def test_calibrated_float32_inputs_are_widened() -> None:
    img, loc, has = case(4)
    got = calibrated_log_scores(img.float(), loc.float(), has, 0.3, 0.01)
    assert got.dtype == torch.float64
    ref = calibrated_reference(img.float().double(), loc.float().double(), has, 0.3, 0.01)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_beta_zero_is_image_only_even_with_zero_prior() -> None:
    img, loc, has = case(5)
    loc[:, :3] = 0.0
    for eps in (0.0, 0.05):
        got = calibrated_log_scores(img, loc, torch.ones_like(has), 0.0, eps)
        assert torch.equal(got, img.log())
        assert torch.equal(got.argsort(dim=1), img.argsort(dim=1))


def test_eps_zero_is_the_papers_product() -> None:
    img, loc, has = case(6)
    loc[~has] = float("nan")
    for beta in (1.0, 0.25):
        assert torch.equal(calibrated_log_scores(img, loc, has, beta, 0.0),
                           fused_log_scores(img, loc, has, beta))
    # eps = 1 turns the prior into a constant 1: the image alone again
    torch.testing.assert_close(calibrated_log_scores(img, loc, has, 3.0, 1.0), img.log())


def test_eps_keeps_a_zero_prior_from_vetoing() -> None:
    img = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    loc = torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    has = torch.tensor([True])
    assert calibrated_log_scores(img, loc, has, 1.0, 0.0)[0, 0] == -math.inf
    s = calibrated_log_scores(img, loc, has, 1.0, 0.1).exp()
    torch.testing.assert_close(s, torch.tensor([[0.09, 0.1 * 0.55]], dtype=torch.float64))


def test_calibrated_is_row_chunk_independent() -> None:
    img, loc, has = case(7, n=101)
    whole = calibrated_log_scores(img, loc, has, 0.7, 0.05)
    parts = [calibrated_log_scores(img[i:i + 17], loc[i:i + 17], has[i:i + 17], 0.7, 0.05)
             for i in range(0, 101, 17)]
    assert torch.equal(torch.cat(parts), whole)


def test_fusion_dataclass_validation_and_dict_round_trip() -> None:
    assert Fusion() == Fusion("paper", 1.0, 0.0)
    fu = Fusion("calibrated", 0.02, 0.01)
    assert Fusion.from_dict(fu.to_dict()) == fu
    assert Fusion.from_dict({"kind": "calibrated"}) == Fusion("calibrated", 1.0, 0.0)
    assert isinstance(Fusion("calibrated", 1, 0).beta, float)
    with pytest.raises(ConfigError, match=r"fusion\.kind: expected one of \['paper', 'calibrated'\], got 'x'"):
        Fusion("x")
    with pytest.raises(ConfigError, match=r"beta: expected a finite value >= 0, got -1"):
        Fusion("calibrated", -1.0)
    with pytest.raises(ConfigError, match=r"eps: expected a value in \[0, 1\], got 1\.5"):
        Fusion("calibrated", 1.0, 1.5)
    with pytest.raises(ConfigError, match=r"fusion\.eps: expected 0 for kind 'paper', got 0\.1"):
        Fusion("paper", 1.0, 0.1)
    with pytest.raises(ConfigError, match=r"metrics\.json:fusion: unknown keys"):
        Fusion.from_dict({"kind": "paper", "bta": 1}, where="metrics.json:fusion")
    with pytest.raises(ConfigError, match=r"fusion\.beta: expected a number, got '1'"):
        Fusion.from_dict({"kind": "paper", "beta": "1"})
    with pytest.raises(ConfigError, match="fusion: expected a mapping with 'kind'"):
        Fusion.from_dict({"beta": 1})
    with pytest.raises(ConfigError, match="eps: expected a value in"):
        calibrated_log_scores(*case()[:2], case()[2], 1.0, float("nan"))
    with pytest.raises(AttributeError):
        fu.beta = 2.0  # type: ignore[misc]
