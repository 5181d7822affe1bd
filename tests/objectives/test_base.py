"""Registry-driven contracts: every objective builds, runs, and trains exactly its parameters."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch
from torch import nn

import geocsp.objectives as objectives
from geocsp.errors import ConfigError
from geocsp.objectives import (
    FINETUNE_LOSSES,
    OBJECTIVES,
    DistContext,
    create_finetune_loss,
    create_objective,
    list_finetune_losses,
    list_objectives,
)
from geocsp.objectives.base import encode_locations

from ._helpers import RecordingEncoder, make_batch


def test_every_loss_module_registers_something():
    owners = {e.obj.__module__ for e in OBJECTIVES} | {e.obj.__module__ for e in FINETUNE_LOSSES}
    for info in pkgutil.iter_modules(objectives.__path__):
        if info.name in ("base", "queue"):
            continue  # shared code, registers nothing by design
        assert f"geocsp.objectives.{info.name}" in owners, info.name
        importlib.import_module(f"geocsp.objectives.{info.name}")


@pytest.mark.parametrize("name", list_objectives())
def test_gradients_reach_exactly_the_trained_parameters(name):
    torch.manual_seed(0)
    enc = RecordingEncoder(d=8, dropout=0.1)
    w = nn.Linear(5, 8)
    obj = create_objective(name, loc_dim=8, img_dim=5)
    b = make_batch(6, 5, max(obj.num_negatives, 0), seed=1)
    out = obj(b, enc, w)
    assert torch.isfinite(out.total) and out.total.ndim == 0
    out.total.backward()
    trained = [*enc.parameters(), *obj.parameters()]
    trained += list(w.parameters()) if obj.uses_image_projection else []
    untouched = [] if obj.uses_image_projection else list(w.parameters())
    for p in trained:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    for p in untouched:
        assert p.grad is None
    if name == "clip":
        assert [n for n, _ in obj.named_parameters()] == ["logit_scale"]
    if name == "mse":
        assert {n for n, _ in obj.named_parameters()} == {"loc_dec.weight", "loc_dec.bias"}


@pytest.mark.parametrize("name", list_finetune_losses())
def test_finetune_gradients_reach_logits_and_background(name):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, requires_grad=True)
    bg = torch.randn(5, 4, generator=g, requires_grad=True)
    loss = create_finetune_loss(name)
    out = loss(logits, torch.tensor([0, 1, 2, 3, 0]), bg)
    out.total.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert (bg.grad is not None) == loss.needs_background


def test_encode_locations_layout():
    seen = []

    def enc(x):
        seen.append(x.shape[0])
        return torch.cat([x, x.sum(1, keepdim=True)], 1)

    b = make_batch(3, 2, 2, seed=0)
    e, e2, n = encode_locations(b, enc, second_pass=True, negatives=True)
    assert seen == [3 + 3 + 6]
    torch.testing.assert_close(e[:, :2], b.lonlat)
    torch.testing.assert_close(e2[:, :2], b.lonlat)
    torch.testing.assert_close(n[:, :, :2], b.neg_lonlat)
    e, e2, n = encode_locations(b, enc, second_pass=False, negatives=False)
    assert seen[-1] == 3 and e2 is None and n is None


def test_dist_context_validation():
    with pytest.raises(ConfigError, match="need 0 <= rank < world_size"):
        DistContext(rank=2, world_size=2)
