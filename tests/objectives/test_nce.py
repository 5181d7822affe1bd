"""CSP-NCE-* objectives vs a float64 NumPy transcription of spec §4.4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.objectives import PretrainBatch, create_objective

from ._helpers import RecordingEncoder, make_batch, np_neglog, np_normalize, np_sigmoid

B, D, DIM, C = 7, 5, 8, 2


def _np_binary_inbatch(u: np.ndarray, v: np.ndarray) -> float:
    """mean_i [ (N-1) bce(S_ii) + sum_{j != i} bce(1 - S_ij) ] / (N-1), written literally."""
    n = len(u)
    rows = []
    for i in range(n):
        s = np_sigmoid(u[i] @ v.T)
        negs = sum(np_neglog(1.0 - s[j]) for j in range(n) if j != i)
        rows.append(((n - 1) * np_neglog(s[i]) + negs) / (n - 1))
    return float(np.mean(rows))


@pytest.mark.parametrize(("b1", "b2"), [(1.0, 1.0), (0.3, 2.0), (1.5, 0.0), (0.0, 0.0)])
def test_nce_matches_numpy_reference(b1, b2):
    torch.manual_seed(0)
    enc = RecordingEncoder(d=DIM, dropout=0.3).double()
    w = nn.Linear(D, DIM).double()
    b = make_batch(B, D, C, seed=3)
    batch = PretrainBatch(b.lonlat.double(), b.feats.double(), b.neg_lonlat.double())
    obj = create_objective(
        "csp-nce-bld", loc_dim=DIM, img_dim=D, neg_loc_weight=b1, simcse_weight=b2, num_negatives=C
    )
    out = obj(batch, enc, w)
    emb = enc.outputs[0]
    u, v = np_normalize(emb[:B]), np_normalize(w(batch.feats).detach().numpy())
    ref = {"L_B": _np_binary_inbatch(u, v)}
    start = B
    if b2 > 0:
        ref["L_D"] = _np_binary_inbatch(u, np_normalize(emb[B : 2 * B]))
        start = 2 * B
    if b1 > 0:
        n = np_normalize(emb[start:].reshape(B, C, DIM))
        ref["L_L"] = float(
            np.mean(
                [[np_neglog(1 - np_sigmoid(n[i, c] @ v[i])) for c in range(C)] for i in range(B)]
            )
        )
    assert set(out.terms) == set(ref)
    for k, val in ref.items():
        assert out.terms[k].item() == pytest.approx(val, rel=1e-10)
    expected = ref["L_B"] + b1 * ref.get("L_L", 0.0) + b2 * ref.get("L_D", 0.0)
    assert out.total.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n", [2, 5, 9])
def test_positive_weighted_like_average_negative(n):
    # s_ii = 1, s_ij = 0 (i != j): L_B,i = bce(σ(1)) + bce(1 - σ(0)) for every N; an unweighted
    # sum over negatives would grow like (N - 1) bce(0.5).
    u = torch.eye(n, n + 1)
    v = torch.eye(n, n + 1)
    obj = create_objective("csp-nce-b", loc_dim=n + 1, img_dim=n + 1)
    out = obj(PretrainBatch(torch.zeros(n, 2), v), lambda x: u, lambda f: f)
    expected = np_neglog(np_sigmoid(1.0)) + np_neglog(0.5)
    assert out.total.item() == pytest.approx(float(expected), rel=1e-6)


def test_batch_of_one_keeps_only_the_positive():
    one = torch.ones(1, 3)
    obj = create_objective("csp-nce-b", loc_dim=3, img_dim=3)
    out = obj(PretrainBatch(torch.zeros(1, 2), one), lambda x: one, lambda f: f)
    assert out.total.item() == pytest.approx(float(np_neglog(np_sigmoid(1.0))), rel=1e-6)


def test_nce_config_validation():
    with pytest.raises(ConfigError, match="neg_loc_weight must be a finite number >= 0"):
        create_objective("csp-nce-bld", loc_dim=4, img_dim=4, neg_loc_weight=-1)
    with pytest.raises(ConfigError, match="num_negatives must be >= 1"):
        create_objective("imgcontloss", loc_dim=4, img_dim=4, num_negatives=0)
    assert create_objective("imgcontlossnolocneg", loc_dim=4, img_dim=4).num_negatives == 0
