"""Run configs: YAML round trip, validation, presets and override precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from geocsp.config import dump_yaml, from_dict, load_yaml
from geocsp.errors import ConfigError
from geocsp.training import (
    EvaluateConfig,
    FinetuneConfig,
    PretrainConfig,
    list_presets,
    load_preset,
    resolve_config,
)


@pytest.mark.parametrize("cls", [PretrainConfig, FinetuneConfig, EvaluateConfig])
def test_yaml_round_trip(cls: type) -> None:
    cfg = cls()
    assert from_dict(cls, yaml.safe_load(dump_yaml(cfg))) == cfg


def test_preset_round_trip_through_yaml() -> None:
    cfg = resolve_config(PretrainConfig, stage="pretrain", preset="paper-inat2018")
    assert from_dict(PretrainConfig, yaml.safe_load(dump_yaml(cfg))) == cfg


def test_precedence_defaults_preset_file_set(tmp_path: Path) -> None:
    f = tmp_path / "run.yaml"
    f.write_text("data:\n  epochs: 7\noptim:\n  lr: 0.01\nseed: 5\n")
    base = resolve_config(PretrainConfig, stage="pretrain")
    assert base.data.epochs == PretrainConfig().data.epochs
    pre = resolve_config(PretrainConfig, stage="pretrain", preset="paper-inat2018")
    assert (pre.data.epochs, pre.optim.lr) == (30, 0.0005)
    both = resolve_config(PretrainConfig, stage="pretrain", preset="paper-inat2018", config_file=f)
    assert (both.data.epochs, both.optim.lr, both.seed) == (7, 0.01, 5)
    assert both.objective.args["tau_inbatch"] == 20.0  # preset value not touched by the file
    top = resolve_config(PretrainConfig, stage="pretrain", preset="paper-inat2018", config_file=f,
                         overrides=["data.epochs=3", "objective.args.tau_inbatch=1"])
    assert (top.data.epochs, top.optim.lr, top.objective.args["tau_inbatch"]) == (3, 0.01, 1)


def test_config_file_with_stage_sections(tmp_path: Path) -> None:
    f = tmp_path / "both.yaml"
    f.write_text("pretrain:\n  seed: 3\nfinetune:\n  seed: 4\n  ratio: 0.2\n")
    assert resolve_config(PretrainConfig, stage="pretrain", config_file=f).seed == 3
    ft = resolve_config(FinetuneConfig, stage="finetune", config_file=f)
    assert (ft.seed, ft.ratio) == (4, 0.2)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["optim.lrr=1"], "unknown config key 'optim.lrr'; did you mean 'lr'"),
        (["ratio=0"], r"ratio must be in \(0, 1\]"),
        (["ratio=1.5"], r"ratio must be in \(0, 1\]"),
        (["precision=fp16"], "precision"),
        (["compile=fast"], "compile"),
        (["data.sampler=random"], "data.sampler"),
        (["optim.lr=-1"], "optim.lr must be a finite number > 0"),
        (["data.batch_size=0"], "data.batch_size"),
        (["checkpoint_every=0"], "checkpoint_every"),
    ],
)
def test_invalid_values_are_one_line_config_errors(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        resolve_config(FinetuneConfig, stage="finetune", overrides=overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", [PretrainConfig, FinetuneConfig])
def test_compile_takes_a_bool_or_a_torch_compile_mode(cls: type, tmp_path: Path) -> None:
    stage = "pretrain" if cls is PretrainConfig else "finetune"
    for value, expected in [("true", True), ("off", False), ("reduce-overhead", "reduce-overhead"),
                            ("max-autotune", "max-autotune")]:
        cfg = resolve_config(cls, stage=stage, overrides=[f"compile={value}"])
        assert cfg.compile == expected
        f = tmp_path / "c.yaml"
        f.write_text(dump_yaml(cfg))
        assert from_dict(cls, load_yaml(f)).compile == expected  # round-trips through YAML
    with pytest.raises(ConfigError, match="compile must be true, false or one of"):
        cls(compile="default")


def test_maybe_compile_passes_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from geocsp.training.loop import maybe_compile

    calls: list[Any] = []
    monkeypatch.setattr(torch, "compile", lambda module, mode=None: calls.append(mode) or module)
    net = torch.nn.Linear(2, 2)
    assert maybe_compile(net, False) is net and calls == []
    maybe_compile(net, True)
    maybe_compile(net, "reduce-overhead")
    assert calls == [None, "reduce-overhead"]


def test_evaluate_config_beta() -> None:
    assert from_dict(EvaluateConfig, {"beta": "tune"}).beta == "tune"
    assert from_dict(EvaluateConfig, {"beta": "0.5"}).beta == 0.5
    with pytest.raises(ConfigError, match="beta"):
        EvaluateConfig(beta="best")
    with pytest.raises(ConfigError, match="beta"):
        EvaluateConfig(beta=-1.0)


def test_presets_carry_the_script_values() -> None:
    assert {"paper-inat2018", "paper-fmow"} <= set(list_presets())
    inat = resolve_config(PretrainConfig, stage="pretrain", preset="paper-inat2018")
    assert inat.objective.name == "csp-mc-bld"
    assert inat.objective.args["tau_inbatch"] == 20.0
    assert inat.data.negatives.name == "sphericalold"
    assert inat.data.sampler == "balanced" and inat.data.max_per_class == 100
    assert (inat.optim.lr, inat.data.batch_size, inat.model.dim) == (0.0005, 1024, 256)
    fmow = resolve_config(PretrainConfig, stage="pretrain", preset="paper-fmow")
    assert (fmow.optim.lr, fmow.data.epochs, fmow.model.network_args["activation"]) == (5e-5, 300, "gelu")
    for name in ("paper-inat2018", "paper-fmow"):
        ft = resolve_config(FinetuneConfig, stage="finetune", preset=name)
        assert (ft.optim.lr, ft.optim.lr_decay, ft.loss.name) == (0.001, 0.98, "full")


def test_preset_components_build() -> None:
    from geocsp.data.samplers import create_location_sampler
    from geocsp.nets import LocationEncoder
    from geocsp.objectives import create_objective

    for name in list_presets():
        cfg = resolve_config(PretrainConfig, stage="pretrain", preset=name)
        enc = LocationEncoder(cfg.model)
        assert enc.dim == cfg.model.dim
        if name.startswith("paper-"):
            assert enc.dim == 256  # the reference scripts' num_filts
        create_objective(cfg.objective.name, loc_dim=enc.dim, img_dim=16, **cfg.objective.args)
        create_location_sampler(cfg.data.negatives.name, **cfg.data.negatives.args)


def test_unknown_preset_and_stage() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'paper-inat'; did you mean"):
        load_preset("paper-inat", "pretrain")
    with pytest.raises(ConfigError, match="stage must be one of"):
        load_preset("paper-fmow", "evaluate")


def test_an_unknown_key_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "unk.yaml"
    f.write_text("seed: 3\nbogus_key: 1\n")
    with pytest.raises(ConfigError, match=r"unk\.yaml: unknown config key 'bogus_key'") as info:
        resolve_config(FinetuneConfig, stage="finetune", config_file=f)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^unknown config key 'bogus'"):  # an override is not the file's
        resolve_config(FinetuneConfig, stage="finetune", overrides=["bogus=1"])
