"""The shared B/L/D machinery of ``objectives/aux_terms.py``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.objectives.aux_terms import AuxTermsConfig, AuxTermsObjective

from ._helpers import RecordingEncoder, make_batch


def test_config_defaults_and_validation():
    assert AuxTermsConfig() == AuxTermsConfig(1.0, 1.0, 1)
    AuxTermsConfig(neg_loc_weight=0.0, num_negatives=0)
    with pytest.raises(ConfigError, match=r"AuxTermsConfig\.simcse_weight must be a finite"):
        AuxTermsConfig(simcse_weight=-1.0)
    with pytest.raises(ConfigError, match=r"AuxTermsConfig\.num_negatives must be >= 1"):
        AuxTermsConfig(num_negatives=0)


@pytest.mark.parametrize(
    ("a1", "a2", "rows", "has_u2", "has_n"),
    [(1.0, 1.0, 6 + 6 + 12, True, True), (0.0, 1.0, 12, True, False), (2.0, 0.0, 18, False, True)],
)
def test_embed_runs_one_pass_and_normalises(a1, a2, rows, has_u2, has_n):
    obj = AuxTermsObjective(
        AuxTermsConfig(neg_loc_weight=a1, simcse_weight=a2, num_negatives=2), loc_dim=8, img_dim=5
    )
    assert obj.num_negatives == (2 if a1 > 0 else 0)
    enc, w = RecordingEncoder(d=8), nn.Linear(5, 8)
    u, v, u2, n = obj.embed(make_batch(6, 5, 2, seed=3), enc, w)
    assert enc.rows == [rows]
    assert (u2 is not None) == has_u2 and (n is not None) == has_n
    for t in (u, v, u2, n):
        if t is not None:
            torch.testing.assert_close(t.norm(dim=-1), torch.ones(t.shape[:-1]))
    if n is not None:
        assert n.shape == (6, 2, 8)


def test_output_weights_only_the_auxiliary_terms():
    obj = AuxTermsObjective(
        AuxTermsConfig(neg_loc_weight=0.5, simcse_weight=3.0), loc_dim=1, img_dim=1
    )
    terms = {"L_B": torch.tensor(1.0), "L_L": torch.tensor(2.0), "L_D": torch.tensor(4.0)}
    out = obj.output(terms)
    assert out.terms is terms and out.total.item() == 1.0 + 0.5 * 2.0 + 3.0 * 4.0
