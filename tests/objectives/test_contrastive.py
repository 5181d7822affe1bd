"""CSP-MC-* and symmetric CLIP objectives vs float64 NumPy references and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.objectives import PretrainBatch, create_objective

from ._helpers import RecordingEncoder, make_batch, np_ce, np_normalize

B, D, DIM, C = 6, 5, 8, 3


def _setup(name: str, c: int = C, dropout: float = 0.3, **cfg: object):
    torch.manual_seed(1)
    enc = RecordingEncoder(d=DIM, dropout=dropout).double()
    w = nn.Linear(D, DIM).double()
    obj = create_objective(name, loc_dim=DIM, img_dim=D, **cfg)
    b = make_batch(B, D, c, seed=2)
    neg = None if b.neg_lonlat is None else b.neg_lonlat.double()
    return enc, w, obj, PretrainBatch(b.lonlat.double(), b.feats.double(), neg)


def _np_mc(emb, v, cfg):
    """Float64 reference of spec §4.3 from the recorded encoder output [x; x'; negatives]."""
    t0, t1, t2 = cfg["tau_inbatch"], cfg["tau_negloc"], cfg["tau_simcse"]
    a1, a2 = cfg["neg_loc_weight"], cfg["simcse_weight"]
    u = np_normalize(emb[:B])
    ar = np.arange(B)
    terms = {"L_B": np_ce(u @ v.T / t0, ar)}
    if cfg["symmetric"]:
        terms["L_B_sym"] = np_ce(v @ u.T / t0, ar)
    start = B
    if a2 > 0:
        u2 = np_normalize(emb[B : 2 * B])
        terms["L_D"] = np_ce(u @ u2.T / t2, ar)
        start = 2 * B
    if a1 > 0:
        n = np_normalize(emb[start:].reshape(B, C, DIM))
        rows = [[u[i] @ v[i]] + [n[i, k] @ v[i] for k in range(C)] for i in range(B)]
        terms["L_L"] = np_ce(np.array(rows) / t1, np.zeros(B, int))
    total = sum(terms.values()) - (1 - a1) * terms.get("L_L", 0) - (1 - a2) * terms.get("L_D", 0)
    return total, terms


@pytest.mark.parametrize(
    "cfg",
    [
        dict(
            tau_inbatch=1.0,
            tau_negloc=1.0,
            tau_simcse=1.0,
            neg_loc_weight=1.0,
            simcse_weight=1.0,
            symmetric=False,
        ),
        dict(
            tau_inbatch=20.0,
            tau_negloc=0.5,
            tau_simcse=0.1,
            neg_loc_weight=0.7,
            simcse_weight=0.1,
            symmetric=False,
        ),
        dict(
            tau_inbatch=0.3,
            tau_negloc=2.0,
            tau_simcse=1.5,
            neg_loc_weight=2.0,
            simcse_weight=0.0,
            symmetric=True,
        ),
        dict(
            tau_inbatch=0.07,
            tau_negloc=1.0,
            tau_simcse=1.0,
            neg_loc_weight=0.0,
            simcse_weight=3.0,
            symmetric=True,
        ),
    ],
)
def test_mc_matches_numpy_reference(cfg):
    enc, w, obj, batch = _setup("csp-mc-bld", num_negatives=C, **cfg)
    out = obj(batch, enc, w)
    v = np_normalize(w(batch.feats).detach().numpy())
    total, terms = _np_mc(enc.outputs[0], v, cfg)
    assert len(enc.rows) == 1  # one concatenated pass
    assert set(out.terms) == set(terms)
    for k, ref in terms.items():
        assert out.terms[k].item() == pytest.approx(ref, rel=1e-10)
    assert out.total.item() == pytest.approx(total, rel=1e-10)
    if "L_D" in terms:  # the SimCSE pass really has fresh dropout masks
        assert abs(terms["L_D"] - terms["L_B"]) > 1e-3


def test_identical_embeddings_give_exactly_ln_n():
    # all similarities equal -> softmax uniform -> CE = ln N exactly, for any tau
    ones = lambda x: torch.ones(x.shape[0], 4)  # noqa: E731
    batch = make_batch(B, D, 0)
    for name, expected in (("csp-mc-b", math.log(B)), ("clip", math.log(B))):
        out = create_objective(name, loc_dim=4, img_dim=D)(batch, ones, ones)
        assert out.total.item() == pytest.approx(expected, abs=1e-6)
    sym = create_objective("csp-mc-b", loc_dim=4, img_dim=D, symmetric=True, tau_inbatch=0.1)
    assert sym(batch, ones, ones).total.item() == pytest.approx(2 * math.log(B), abs=1e-6)


def test_random_unit_vectors_give_about_ln_n():
    # CE_i - ln N = logsumexp_j(s_ij) - ln N - s_ii lies in [min s - s_ii, max s - s_ii], so
    # |L_B - ln N| <= 2 max|s| deterministically.  Statistically, for random unit vectors in
    # d = 512, s ~ N(0, 1/d): E[L_B] - ln N ~ 1/(2d) and the mean of the 64 s_ii has sd
    # 1/sqrt(64 d) = 0.0055, so 0.03 is a > 5-sigma tolerance.
    n, d = 64, 512
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    obj = create_objective("csp-mc-b", loc_dim=d, img_dim=d)
    out = obj(PretrainBatch(torch.zeros(n, 2), v), lambda x: u, lambda f: f)
    s = torch.nn.functional.normalize(u, dim=1) @ torch.nn.functional.normalize(v, dim=1).T
    gap = abs(out.total.item() - math.log(n))
    assert gap <= 2 * s.abs().max().item()
    assert gap < 0.03


def test_aligned_pairs_with_small_tau_give_near_zero():
    n, tau = 8, 0.01
    eye = torch.eye(n)
    obj = create_objective("csp-mc-b", loc_dim=n, img_dim=n, tau_inbatch=tau)
    out = obj(PretrainBatch(torch.zeros(n, 2), eye), lambda x: eye, lambda f: f)
    exact = math.log1p((n - 1) * math.exp(-1 / tau))
    assert out.total.item() == pytest.approx(exact, abs=1e-7)
    assert out.total.item() < 1e-6


@pytest.mark.parametrize(
    ("name", "overrides", "passes", "terms"),
    [
        ("csp-mc-bld", {}, (2, True), {"L_B", "L_L", "L_D"}),
        ("csp-mc-bl", {}, (1, True), {"L_B", "L_L"}),
        ("csp-mc-bd", {}, (2, False), {"L_B", "L_D"}),
        ("csp-mc-b", {}, (1, False), {"L_B"}),
        ("contsoftmax", {"simcse_weight": 0.0, "neg_loc_weight": 0.0}, (1, False), {"L_B"}),
        ("contsoftmaxsym", {}, (2, True), {"L_B", "L_B_sym", "L_L", "L_D"}),
        ("csp-nce-bld", {}, (2, True), {"L_B", "L_L", "L_D"}),
        ("imgcontloss", {}, (1, True), {"L_B", "L_L"}),
        ("csp-nce-b", {}, (1, False), {"L_B"}),
        ("csp-nce-bld", {"simcse_weight": 0}, (1, True), {"L_B", "L_L"}),
    ],
)
def test_zero_weight_term_is_not_computed(name, overrides, passes, terms):
    copies, with_neg = passes
    enc, w, obj, batch = _setup(name, num_negatives=C, **overrides)
    out = obj(batch, enc, w)
    assert set(out.terms) == terms
    assert enc.rows == [copies * B + (B * C if with_neg else 0)]
    assert obj.num_negatives == (C if with_neg else 0)


def test_missing_negatives_raise():
    enc, w, obj, batch = _setup("csp-mc-bld", c=0)
    with pytest.raises(ConfigError, match=r"neg_lonlat must have shape \(B=6, C, 2\), got None"):
        obj(batch, enc, w)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"tau_inbatch": 0.0}, "tau_inbatch must be a finite number > 0"),
        ({"tau_negloc": -1.0}, "tau_negloc must be a finite number > 0"),
        ({"tau_simcse": float("nan")}, "tau_simcse must be a finite number > 0"),
        ({"neg_loc_weight": -0.1}, "neg_loc_weight must be a finite number >= 0"),
        ({"simcse_weight": -1}, "simcse_weight must be a finite number >= 0"),
        ({"num_negatives": 0}, "num_negatives must be >= 1 when neg_loc_weight > 0"),
        ({"tau": 1.0}, "unknown config key 'csp-mc-bld.tau'"),
    ],
)
def test_mc_config_validation(overrides, match):
    with pytest.raises(ConfigError, match=match):
        create_objective("csp-mc-bld", loc_dim=4, img_dim=4, **overrides)


def test_ablation_defaults_and_unknown_name():
    assert create_objective("csp-mc-bd", loc_dim=4, img_dim=4).config.neg_loc_weight == 0.0
    assert create_objective("CSP-MC-BL", loc_dim=4, img_dim=4).config.simcse_weight == 0.0
    with pytest.raises(ConfigError, match="unknown objective 'csp-mc-bdl'; did you mean"):
        create_objective("csp-mc-bdl", loc_dim=4, img_dim=4)


def _np_clip(enc_out, v, scale, n_queue):
    u = np_normalize(enc_out[:B])
    q = np_normalize(enc_out[B:]) if n_queue else np.zeros((0, DIM))
    ar = np.arange(B)
    l2i = np_ce(scale * u @ v.T, ar)
    i2l = np_ce(scale * v @ np.concatenate([u, q]).T, ar)
    return l2i, i2l


def test_clip_matches_numpy_with_queue_and_clamp():
    enc, w, obj, batch = _setup("clip", c=0, queue_size=10)
    assert obj.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    v = np_normalize(w(batch.feats).detach().numpy())
    out1 = obj(batch, enc, w)  # empty queue: plain symmetric CLIP
    l2i, i2l = _np_clip(enc.outputs[0], v, 1 / 0.07, 0)
    assert out1.terms["loc_to_img"].item() == pytest.approx(l2i, rel=1e-6)
    assert out1.total.item() == pytest.approx((l2i + i2l) / 2, rel=1e-6)
    with torch.no_grad():
        obj.logit_scale.fill_(math.log(1000.0))  # clamped to 100
    out2 = obj(batch, enc, w)  # queue now holds batch 1's B locations
    assert enc.rows[-1] == 2 * B
    l2i, i2l = _np_clip(enc.outputs[-1], v, 100.0, B)
    assert out2.terms["img_to_loc"].item() == pytest.approx(i2l, rel=1e-6)
    assert out2.total.item() == pytest.approx((l2i + i2l) / 2, rel=1e-6)
    out2.total.backward()
    assert obj.logit_scale.grad.item() == 0.0  # no gradient while clamped


def test_clip_fixed_temperature_and_validation():
    obj = create_objective(
        "clip", loc_dim=4, img_dim=4, learn_temperature=False, init_temperature=0.5
    )
    assert list(obj.parameters()) == []
    assert obj.logit_scale.item() == pytest.approx(math.log(2.0))
    with pytest.raises(ConfigError, match="init_temperature must be a finite number > 0"):
        create_objective("clip", loc_dim=4, img_dim=4, init_temperature=0)
    with pytest.raises(ConfigError, match="queue_size must be >= 0"):
        create_objective("clip", loc_dim=4, img_dim=4, queue_size=-1)


def test_clip_queue_untouched_without_grad():
    enc, w, obj, batch = _setup("clip", c=0, queue_size=4)
    with torch.no_grad():
        obj(batch, enc, w)
    assert int(obj.queue.count) == 0
    obj(batch, enc, w)
    assert int(obj.queue.count) == 4
    torch.testing.assert_close(obj.queue.contents(), batch.lonlat[-4:].float())
