"""Registries and factories (``objectives/api.py``).

Registry-driven contracts: every objective builds, runs, and trains exactly its parameters;
every registered config is a real, greppable class with the documented defaults.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys

import pytest
import torch
from torch import nn

import geocsp.objectives as objectives
from geocsp._registry import Registry
from geocsp.errors import ConfigError
from geocsp.objectives import (
    FINETUNE_LOSSES,
    OBJECTIVES,
    create_finetune_loss,
    create_objective,
    get_objective_config,
    list_finetune_losses,
    list_objectives,
)
from geocsp.objectives.api import register_variant

from ._helpers import RecordingEncoder, make_batch

SHARED_MODULES = ("api", "aux_terms", "functional", "queue", "types")


def test_every_loss_module_registers_something():
    owners = {e.obj.__module__ for e in OBJECTIVES} | {e.obj.__module__ for e in FINETUNE_LOSSES}
    for info in pkgutil.iter_modules(objectives.__path__):
        if info.name in SHARED_MODULES:
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


_MC = {"tau_inbatch": 1.0, "tau_negloc": 1.0, "tau_simcse": 1.0, "symmetric": False}
_AUX = {"neg_loc_weight": 1.0, "simcse_weight": 1.0, "num_negatives": 1}

# The Table 2 ablation table as it was before the configs became explicit classes:
# name -> (aliases, config class name, module, field defaults in field order).
EXPECTED_OBJECTIVES = {
    "csp-mc-bld": (("contsoftmax",), "MCConfig", "contrastive", {**_AUX, **_MC}),
    "csp-mc-bl": ((), "CspMcBlConfig", "contrastive", {**_AUX, **_MC, "simcse_weight": 0.0}),
    "csp-mc-bd": ((), "CspMcBdConfig", "contrastive", {**_AUX, **_MC, "neg_loc_weight": 0.0}),
    "csp-mc-b": (
        (),
        "CspMcBConfig",
        "contrastive",
        {**_AUX, **_MC, "neg_loc_weight": 0.0, "simcse_weight": 0.0},
    ),
    "csp-mc-bld-sym": (
        ("contsoftmaxsym",),
        "CspMcBldSymConfig",
        "contrastive",
        {**_AUX, **_MC, "symmetric": True},
    ),
    "clip": (
        ("satclip",),
        "ClipConfig",
        "contrastive",
        {
            "init_temperature": 0.07,
            "max_logit_scale": 100.0,
            "learn_temperature": True,
            "queue_size": 0,
        },
    ),
    "csp-nce-bld": (("imgcontlosssimcse",), "NCEConfig", "nce", dict(_AUX)),
    "csp-nce-bl": (("imgcontloss",), "CspNceBlConfig", "nce", {**_AUX, "simcse_weight": 0.0}),
    "csp-nce-b": (
        ("imgcontlossnolocneg",),
        "CspNceBConfig",
        "nce",
        {**_AUX, "neg_loc_weight": 0.0, "simcse_weight": 0.0},
    ),
    "mse": (("l2regress",), "MSEConfig", "regression", {}),
}

EXPECTED_DESCRIPTIONS = {
    "csp-mc-bl": "CSP-MC-BL: no SimCSE term (α2 = 0).",
    "csp-mc-bd": "CSP-MC-BD: no random-location term (α1 = 0).",
    "csp-mc-b": "CSP-MC-B: in-batch term only (α1 = α2 = 0).",
    "csp-mc-bld-sym": (
        "CSP-MC-BLD with the symmetric in-batch term (reference ``contsoftmaxsym``)."
    ),
    "csp-nce-bl": "CSP-NCE-BL (reference ``imgcontloss``): no SimCSE term (β2 = 0).",
    "csp-nce-b": "CSP-NCE-B (reference ``imgcontlossnolocneg``): in-batch term only.",
}

_FULL = {"pos_weight": None, "bg_weight": 1.0, "negatives": "hard"}
EXPECTED_FINETUNE = {
    "full": (("full_loss",), "FullConfig", _FULL),
    "an_ssdl": ((), "AnConfig", {"negatives": "hard"}),
    "an_slds": ((), "AnConfig", {"negatives": "hard"}),
    "ce": (("softmax",), "CEConfig", {"label_smoothing": 0.0}),
    "an_full": ((), "AnFullConfig", {**_FULL, "pos_weight": 2048.0}),
    "an_full_me": ((), "AnFullMEConfig", {**_FULL, "pos_weight": 2048.0, "negatives": "entropy"}),
    "an_ssdl_me": ((), "AnMEConfig", {"negatives": "entropy"}),
    "an_slds_me": ((), "AnMEConfig", {"negatives": "entropy"}),
    "distill": (("self-training",), "DistillConfig", {
        "base": "full", "base_args": {}, "mode": "em", "weight": 1.0, "temperature": 1.0, "threshold": 0.0,
        "balance": True, "topk": 20, "batch_size": 1024, "splits": ("unlabeled", "train"), "probs_key": "auto"}),
}


def _defaults(cfg: type) -> dict[str, object]:
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            for f in dataclasses.fields(cfg)}


def _assert_real_class(cfg: type) -> None:
    """The config is written in its module's source, not synthesised at run time."""
    assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen
    header = re.compile(rf"^class {cfg.__name__}\b[(:]", re.MULTILINE)
    assert header.search(inspect.getsource(cfg))
    assert header.search(inspect.getsource(sys.modules[cfg.__module__]))
    assert getattr(sys.modules[cfg.__module__], cfg.__name__) is cfg


def test_registered_objectives_are_exactly_the_documented_ones_in_order():
    assert list_objectives() == list(EXPECTED_OBJECTIVES)


@pytest.mark.parametrize("name", list(EXPECTED_OBJECTIVES))
def test_objective_config_is_a_real_class_with_the_table_defaults(name):
    aliases, cls_name, module, defaults = EXPECTED_OBJECTIVES[name]
    entry = OBJECTIVES.get(name)
    cfg = get_objective_config(name)
    assert entry.config is cfg and entry.aliases == aliases
    assert cfg.__name__ == cls_name and cfg.__module__ == f"geocsp.objectives.{module}"
    _assert_real_class(cfg)
    assert list(_defaults(cfg).items()) == list(defaults.items())
    assert dataclasses.asdict(cfg()) == defaults
    assert all(get_objective_config(a) is cfg for a in aliases)
    if name in EXPECTED_DESCRIPTIONS:
        assert entry.description == EXPECTED_DESCRIPTIONS[name]


def test_registered_finetune_losses_are_exactly_the_documented_ones_in_order():
    assert list_finetune_losses() == list(EXPECTED_FINETUNE)


@pytest.mark.parametrize("name", list(EXPECTED_FINETUNE))
def test_finetune_config_is_a_real_class_with_the_table_defaults(name):
    aliases, cls_name, defaults = EXPECTED_FINETUNE[name]
    entry = FINETUNE_LOSSES.get(name)
    cfg = entry.config
    assert cfg is not None and cfg.__name__ == cls_name and entry.aliases == aliases
    _assert_real_class(cfg)
    assert _defaults(cfg) == defaults


@pytest.mark.parametrize("name", list(EXPECTED_OBJECTIVES))
def test_saved_config_round_trips_through_the_factory(name):
    cfg = get_objective_config(name)
    saved = dataclasses.asdict(cfg())
    obj = create_objective(name, loc_dim=4, img_dim=3, **saved)
    assert type(obj.config) is cfg and dataclasses.asdict(obj.config) == saved


def test_register_variant_registers_the_object_with_the_docstring_line():
    reg: Registry[object] = Registry("thing")

    class Thing:
        """A thing."""

    @register_variant(reg, "thing-b", Thing, aliases=("tb",))
    @dataclasses.dataclass(frozen=True)
    class ThingBConfig:
        """Thing with b.

        More text.
        """

        b: int = 2

    entry = reg.get("TB")
    assert entry.name == "thing-b" and entry.obj is Thing and entry.config is ThingBConfig
    assert entry.description == "Thing with b."
    with pytest.raises(ConfigError, match="already registered"):
        register_variant(reg, "thing-b", Thing)(ThingBConfig)
