"""MSE objective (spec §4.5) vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geocsp.objectives import PretrainBatch, create_objective

from ._helpers import RecordingEncoder, make_batch


def test_mse_matches_numpy_and_ignores_w():
    torch.manual_seed(0)
    enc = RecordingEncoder(d=8, dropout=0.2).double()
    obj = create_objective("l2regress", loc_dim=8, img_dim=5).double()
    b = make_batch(6, 5, 0, seed=4)
    batch = PretrainBatch(b.lonlat.double(), 3.0 * b.feats.double())

    def never(_):
        raise AssertionError("MSE must not call encode_img")

    out = obj(batch, enc, never)
    e = enc.outputs[0]
    wt, bias = obj.loc_dec.weight.detach().numpy(), obj.loc_dec.bias.detach().numpy()
    ref = np.mean((e @ wt.T + bias - batch.feats.numpy()) ** 2)
    assert out.total.item() == pytest.approx(ref, rel=1e-10)
    assert set(out.terms) == {"L_MSE"}
    assert enc.rows == [6]
    assert obj.num_negatives == 0 and obj.uses_image_projection is False
    assert tuple(obj.loc_dec.weight.shape) == (5, 8)
