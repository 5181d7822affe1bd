"""Partial unfreezing: a frozen, a scaled and a late-unfrozen encoder move exactly as configured."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from geocsp.data import GeoDataset
from geocsp.errors import ConfigError
from geocsp.prior import GeoPrior
from geocsp.training import FinetuneConfig, RunDir, finetune, resolve_config
from geocsp.training.finetune import build_finetune_model
from geocsp.training.rundir import load_tensors
from geocsp.training.unfreeze import encoder_trains, optimizer_params

from .resume_helpers import interrupted_and_full
from .test_crossfit import CLASSES, TINY, _world

ONE_STEP = [*TINY, "data.batch_size=64"]  # the 32 subset rows in one step per epoch


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GeoDataset:
    return _world(tmp_path_factory.mktemp("w") / "calib", calib=True, train_probs=False)


def _cfg(*extra: str) -> FinetuneConfig:
    return resolve_config(FinetuneConfig, overrides=[*ONE_STEP, *extra])


def _initial(cfg: FinetuneConfig) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_finetune_model(cfg, len(CLASSES)).state_dict().items()}


def _final(run: Path) -> dict[str, torch.Tensor]:
    prior = GeoPrior.from_pretrained(run / "prior")
    enc = {f"encoder.{k}": v for k, v in prior.encoder.state_dict().items()}
    return {**enc, "head.weight": prior.classifier.weight.detach()}


def _max_step(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> float:
    return max(float((after[k] - before[k]).abs().max()) for k in before if k.startswith(prefix)
               and before[k].is_floating_point())


@pytest.mark.parametrize("scale", [0.0, 0.25, 1.0])
def test_one_adam_step_moves_the_encoder_by_lr_times_its_scale(world: GeoDataset, tmp_path: Path,
                                                               scale: float) -> None:
    """Adam's first step moves each weight with a gradient by ~lr: the encoder's by lr * scale."""
    cfg = _cfg("data.epochs=1", f"encoder_lr_scale={scale}")
    before = _initial(cfg)
    finetune(cfg, world, tmp_path / "r")
    after = _final(tmp_path / "r")
    lr = cfg.optim.lr
    assert _max_step(before, after, "head.") == pytest.approx(lr, rel=1e-3)
    if scale == 0:
        assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    else:
        assert _max_step(before, after, "encoder.") == pytest.approx(lr * scale, rel=1e-3)


def test_scale_zero_is_freeze_encoder(world: GeoDataset, tmp_path: Path) -> None:
    a = finetune(_cfg("data.epochs=2", "encoder_lr_scale=0"), world, tmp_path / "a")
    b = finetune(_cfg("data.epochs=2", "freeze_encoder=true"), world, tmp_path / "b")
    fa, fb = _final(tmp_path / "a"), _final(tmp_path / "b")
    assert a == b and all(torch.equal(fa[k], fb[k]) for k in fa)


def test_unfreeze_after_keeps_the_encoder_fixed_then_trains_it(world: GeoDataset, tmp_path: Path) -> None:
    cfg = _cfg("data.epochs=3", "unfreeze_after=2", "keep_checkpoints=5", "encoder_lr_scale=0.5")
    before = _initial(cfg)
    finetune(cfg, world, tmp_path / "r")
    ckpts = RunDir(tmp_path / "r").checkpoint_root
    for epoch in (1, 2):
        model = load_tensors(ckpts / f"epoch-{epoch:04d}" / "model.safetensors")
        assert all(torch.equal(before[k], model[k]) for k in before if k.startswith("encoder."))
        assert not torch.equal(before["head.weight"], model["head.weight"])
        state = json.loads((ckpts / f"epoch-{epoch:04d}" / "state.json").read_text())["optim"]
        groups = state["param_groups"]
        assert [g["lr_scale"] for g in groups] == [0.5, 1.0]
        optim = load_tensors(ckpts / f"epoch-{epoch:04d}" / "optim.safetensors")
        assert {int(k.split(".")[1]) for k in optim} == set(groups[1]["params"])  # Adam state for T only
    after = _final(tmp_path / "r")
    # epoch 3 (lr * 0.98**2) is the encoder's first Adam step: ~lr * 0.98**2 * 0.5 per weight
    assert _max_step(before, after, "encoder.") == pytest.approx(cfg.optim.lr * 0.98**2 * 0.5, rel=1e-3)


def test_resume_with_partial_unfreezing_matches_an_uninterrupted_run(world: GeoDataset, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The lr-scaled parameter groups and the encoder's late Adam state round-trip through a checkpoint."""
    cfg = _cfg("data.epochs=4", "unfreeze_after=1", "encoder_lr_scale=0.3", "checkpoint_every=2")
    full, cut = interrupted_and_full(cfg, world, tmp_path, monkeypatch)
    assert cut == full
    fa, fb = _final(tmp_path / "full"), _final(tmp_path / "cut")
    assert all(torch.equal(fa[k], fb[k]) for k in fa)


def test_default_is_one_parameter_group_of_everything() -> None:
    """Full fine-tuning keeps the paper's optimizer: one group, encoder then T."""
    cfg = resolve_config(FinetuneConfig, overrides=TINY)
    model = build_finetune_model(cfg, 4)
    assert optimizer_params(model, cfg) == list(model.parameters())
    assert all(encoder_trains(cfg, e) for e in range(3))
    late = dataclasses.replace(cfg, unfreeze_after=1, data=dataclasses.replace(cfg.data, epochs=3))
    assert [encoder_trains(late, e) for e in range(3)] == [False, True, True]


@pytest.mark.parametrize(("extra", "needle"), [
    (["unfreeze_after=1"], "must be below data.epochs"),
    (["data.epochs=3", "unfreeze_after=1", "freeze_encoder=true"], "cannot be combined with freeze_encoder"),
    (["encoder_lr_scale=-0.5"], "encoder_lr_scale must be a finite number >= 0"),
    (["data.epochs=3", "unfreeze_after=-1"], "unfreeze_after must be an integer >= 0"),
    (["encoder_lr_scale=0", "optim_from_init=true"], "cannot be combined with freeze_encoder"),
])
def test_bad_unfreezing_settings_are_one_line(extra: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        _cfg(*extra)
    assert "\n" not in str(err.value)
