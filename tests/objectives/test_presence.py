"""Fine-tuning losses vs float64 evaluations of the Mac Aodha / SINR formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.objectives import FINETUNE_LOSSES, create_finetune_loss

from ._helpers import np_ce, np_neglog, np_sigmoid

N, Q = 9, 7


def _inputs(seed: int = 0, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(N, Q, generator=g)
    bg = scale * torch.randn(N, Q, generator=g)
    labels = torch.randint(0, Q, (N,), generator=g)
    return logits, labels, bg


def _np_negative(z, negatives):
    p = np_sigmoid(z)
    if negatives == "hard":
        return np_neglog(1.0 - p)
    return -(p * np_neglog(p) + (1.0 - p) * np_neglog(1.0 - p))


def _np_full(z, y, zb, w, bg_weight, negatives="hard"):
    """Spec §5 literally: A = neglog(1 - p) everywhere, A[i, y_i] = w neglog(p[i, y_i])."""
    z, zb = z.double().numpy(), zb.double().numpy()
    a = _np_negative(z, negatives)
    for i, k in enumerate(y.tolist()):
        a[i, k] = w * np_neglog(np_sigmoid(z[i, k]))
    return a.mean() + bg_weight * _np_negative(zb, negatives).mean()


@pytest.mark.parametrize(
    ("name", "overrides", "w", "bgw", "neg"),
    [
        ("full", {}, Q, 1.0, "hard"),
        ("full", {"pos_weight": 3.5, "bg_weight": 0.25}, 3.5, 0.25, "hard"),
        ("an_full", {}, 2048.0, 1.0, "hard"),
        ("an_full_me", {}, 2048.0, 1.0, "entropy"),
    ],
)
@pytest.mark.parametrize("scale", [3.0, 40.0])
def test_full_matches_direct_formula(name, overrides, w, bgw, neg, scale):
    logits, labels, bg = _inputs(1, scale)
    loss = create_finetune_loss(name, **overrides)
    out = loss(logits, labels, bg)
    ref = _np_full(logits, labels, bg, w, bgw, neg)
    assert loss.needs_background
    assert out.total.item() == pytest.approx(ref, rel=2e-6)
    assert out.total.item() == pytest.approx(
        out.terms["presence"].item() + bgw * out.terms["background"].item(), rel=1e-6
    )


def test_full_gradient_finite_at_extreme_logits():
    logits = torch.tensor([[80.0, -80.0, 0.0], [-80.0, 80.0, 5.0]], requires_grad=True)
    bg = torch.tensor([[80.0, -80.0, 0.0]] * 2, requires_grad=True)
    out = create_finetune_loss("full")(logits, torch.tensor([1, 1]), bg)
    out.total.backward()
    assert (
        torch.isfinite(out.total)
        and torch.isfinite(logits.grad).all()
        and torch.isfinite(bg.grad).all()
    )


@pytest.mark.parametrize("negatives", ["hard", "entropy"])
def test_an_ssdl_matches_direct_formula(negatives):
    logits, labels, bg = _inputs(2)
    name = "an_ssdl" if negatives == "hard" else "an_ssdl_me"
    out = create_finetune_loss(name)(logits, labels, bg)
    z, zb, y = logits.double().numpy(), bg.double().numpy(), labels.numpy()
    ar = np.arange(N)
    ref = np_neglog(np_sigmoid(z[ar, y])).mean() + _np_negative(zb[ar, y], negatives).mean()
    assert out.total.item() == pytest.approx(ref, rel=2e-6)


@pytest.mark.parametrize("negatives", ["hard", "entropy"])
def test_an_slds_matches_direct_formula(negatives):
    logits, labels, _ = _inputs(3)
    name = "an_slds" if negatives == "hard" else "an_slds_me"
    loss = create_finetune_loss(name)
    out = loss(logits, labels, None, generator=torch.Generator().manual_seed(7))
    # SINR: other = randint(0, Q - 1); other[other >= y] += 1
    other = torch.randint(0, Q - 1, (N,), generator=torch.Generator().manual_seed(7)).numpy()
    y = labels.numpy()
    other = other + (other >= y)
    z, ar = logits.double().numpy(), np.arange(N)
    ref = np_neglog(np_sigmoid(z[ar, y])).mean() + _np_negative(z[ar, other], negatives).mean()
    assert not loss.needs_background
    assert out.total.item() == pytest.approx(ref, rel=2e-6)


def test_an_slds_other_class_uniform_over_the_rest():
    logits = torch.zeros(4000, 4)
    logits[:, 2] = 50.0  # only class 2 has a large "other" loss
    labels = torch.zeros(4000, dtype=torch.long)
    out = create_finetune_loss("an_slds")(
        logits, labels, None, generator=torch.Generator().manual_seed(0)
    )
    # other class is 1, 2 or 3 with prob 1/3 each: E[loss] ~ 1/3 * neglog(1 - σ(50)) + 2/3 * ln 2
    frac = (out.terms["other_class"].item() - 2 / 3 * np.log(2)) / (
        float(np_neglog(1e-22)) - np.log(2)
    )
    assert abs(frac - 1 / 3) < 0.03


def test_ce_matches_numpy():
    logits, labels, _ = _inputs(4)
    out = create_finetune_loss("ce")(logits, labels, None)
    assert out.total.item() == pytest.approx(
        np_ce(logits.double().numpy(), labels.numpy()), rel=1e-6
    )


def test_errors():
    logits, labels, bg = _inputs(5)
    with pytest.raises(ConfigError, match=r"FullLoss needs bg_logits of shape \(B, 7\), got None"):
        create_finetune_loss("full")(logits, labels, None)
    with pytest.raises(ConfigError, match="AnSSDL needs one background row per sample"):
        create_finetune_loss("an_ssdl")(logits, labels, bg[:3])
    with pytest.raises(ConfigError, match="AnSLDS needs at least 2 classes"):
        create_finetune_loss("an_slds")(logits[:, :1], torch.zeros(N, dtype=torch.long))
    with pytest.raises(ConfigError, match="pos_weight must be a finite number > 0"):
        create_finetune_loss("full", pos_weight=0)
    with pytest.raises(ConfigError, match="bg_weight must be a finite number >= 0"):
        create_finetune_loss("an_full", bg_weight=-1)
    with pytest.raises(ConfigError, match="expected one of"):
        create_finetune_loss("an_ssdl", negatives="soft")
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        create_finetune_loss("ce", label_smoothing=1.0)


def test_registry_names():
    assert {"full", "an_full", "an_ssdl", "an_slds", "ce"} <= set(FINETUNE_LOSSES.names())
    assert FINETUNE_LOSSES.canonical("full_loss") == "full"


def test_full_loss_zero_background_weight_needs_no_background() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 5), torch.randint(0, 5, (6,))
    off = create_finetune_loss("full", bg_weight=0.0)
    on = create_finetune_loss("full")
    assert not off.needs_background and on.needs_background
    out = off(logits, labels, None)  # no background pass needed at all
    assert set(out.terms) == {"presence"}
    ref = on(logits, labels, torch.randn(6, 5))
    torch.testing.assert_close(out.total, ref.terms["presence"])
