"""CSP zero-shot: prototypes, their fallback, the scale fit on the labelled subset only, the CLI path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tests.training.test_crossfit import _watched, logged

import geocsp.training.prototypes as pt
from geocsp.checkpoints import load_prior
from geocsp.cli.main import cli
from geocsp.data import GeoDataset
from geocsp.errors import ConfigError
from geocsp.objectives import create_finetune_loss
from geocsp.prior.heads import CosineHead
from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config


def test_prototypes_of_a_hand_example() -> None:
    proj = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, -2.0], [4.0, 3.0]])
    labels = torch.tensor([0, 0, 2, 2])
    p = pt.class_prototypes(proj, labels, 3)
    s = 0.5**0.5  # class 0: mean of (1, 0) and (0, 1); row norms do not weigh
    assert torch.allclose(p[0], torch.tensor([s, s]))
    expect = torch.tensor([0.8, 0.6 - 1.0])  # class 2: (0, -1) + (0.8, 0.6), then normalised
    assert torch.allclose(p[2], expect / expect.norm())
    assert torch.equal(p[1], torch.zeros(2))  # no labelled row: the zero fallback


def test_zero_prototype_gives_the_offset_everywhere() -> None:
    head = CosineHead(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 5.0, torch.tensor([-1.0, -2.0]))
    emb = torch.randn(7, 2)
    out = head(emb)
    assert torch.equal(out[:, 1], torch.full((7,), -2.0))  # cos = 0 -> b_y, at every location
    assert torch.allclose(out[:, 0], 5.0 * emb[:, 0] / emb.norm(dim=1) - 1.0)


def test_scale_fit_separates_and_is_positive() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (200,), generator=gen)
    cos_pos = torch.rand(200, 4, generator=gen) * 0.2
    cos_pos[torch.arange(200), labels] += 0.7  # the own class is the most similar
    cos_bg = torch.rand(400, 4, generator=gen) * 0.2
    loss = create_finetune_loss("full")
    s, b, value = pt.fit_scale_bias(cos_pos, labels, cos_bg, loss)
    s0 = loss(10.0 * cos_pos.double(), labels, 10.0 * cos_bg.double()).total  # the start (s=10, b=0)
    assert s > 0 and value < float(s0)
    assert pt.fit_scale_bias(cos_pos, labels, cos_bg, loss) == (s, b, value)  # deterministic


TINY = ["device=cpu", "quiet=true", "model.dim=16", "model.network_args.hidden_dim=32",
        "model.encoder_args.num_scales=4", "data.batch_size=512"]


@pytest.fixture(scope="module")
def pre(dataset: GeoDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pre") / "pre"
    pretrain(resolve_config(PretrainConfig, overrides=[*TINY, "data.epochs=1"]), dataset, out)
    return out


def _zero_shot(pre: Path) -> FinetuneConfig:
    return resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=0", "head_init=prototypes",
                                                     "ratio=0.1", f"init={pre}"])


def test_scale_fit_reads_only_train_and_val_only_after(dataset: GeoDataset, pre: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    monkeypatch.setattr(pt, "fit_scale_bias", logged(pt.fit_scale_bias, log))
    m = finetune(_zero_shot(pre), _watched(dataset, log), tmp_path / "zs")
    end = log.index("FIT")
    assert log.count("FIT") == 1 and any(e.startswith("train.features") for e in log[:end])
    assert not [e for e in log[:end] if not e.startswith("train.")]  # never val (nor unlabeled)
    assert any(e.startswith("val.") for e in log[end:])  # val is read, but only for the evaluation
    proto = m["prototypes"]
    assert proto["scale"] > 0 and proto["empty_classes"] == 0 and m["train"] == {"epoch": 0}
    prior = load_prior(tmp_path / "zs")
    assert prior.head_kind == "cosine" and torch.allclose(prior.classifier.scale, torch.tensor(proto["scale"]))
    # the saved prior reproduces the run's location metrics; its prototypes are unit rows
    assert torch.allclose(prior.classifier.weight.norm(dim=1), torch.ones(prior.num_classes), atol=1e-5)
    assert 0 < m["location"]["top1"] <= 1


def test_prototype_head_then_finetuning_moves_it(dataset: GeoDataset, pre: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(_zero_shot(pre), data=dataclasses.replace(_zero_shot(pre).data, epochs=1))
    m = finetune(cfg, dataset, tmp_path / "proto")
    zs = finetune(_zero_shot(pre), dataset, tmp_path / "zs")
    assert m["prototypes"] == zs["prototypes"]  # the same start
    assert m["train"]["epoch"] == 1 and m["location"] != zs["location"]


def test_refusals(dataset: GeoDataset, pre: Path, tmp_path: Path, world: Path) -> None:
    with pytest.raises(ConfigError, match="0 only with head_init=prototypes"):
        resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=0"])
    with pytest.raises(ConfigError, match=">= 1"):
        resolve_config(PretrainConfig, overrides=[*TINY, "data.epochs=0"])
    with pytest.raises(ConfigError, match="head_init"):
        resolve_config(FinetuneConfig, overrides=[*TINY, "head_init=mean"])
    sup = resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=0", "head_init=prototypes"])
    with pytest.raises(ConfigError, match="needs --init"):
        finetune(sup, dataset, tmp_path / "a")
    ft = tmp_path / "ft"  # a fine-tuned prior holds an encoder but no image projection
    finetune(resolve_config(FinetuneConfig, overrides=[*TINY, "data.epochs=1", "ratio=0.1"]), dataset, ft)
    with pytest.raises(ConfigError, match="no pre-trained encoder"):
        pt.load_projection(str(ft))
    enc = tmp_path / "enc"  # an encoder saved without W
    load_prior(ft).encoder.save_pretrained(enc)
    with pytest.raises(ConfigError, match="has no image projection"):
        pt.load_projection(str(enc))
    r = CliRunner().invoke(cli, ["finetune", "--data", str(world), "--out", str(tmp_path / "b"), "--init", str(enc),
                                 *[x for t in TINY for x in ("--set", t)], "--set", "head_init=prototypes",
                                 "--set", "data.epochs=0"])
    assert r.exit_code == 2 and "has no image projection" in r.stderr and "Traceback" not in r.output


def test_cli_zero_shot_path(world: Path, dataset: GeoDataset, pre: Path, tmp_path: Path) -> None:
    out = tmp_path / "zs"
    args = ["finetune", "--data", str(world), "--out", str(out), "--init", str(pre), "--ratio", "0.1",
            *[x for t in TINY for x in ("--set", t)], "--set", "head_init=prototypes", "--set", "data.epochs=0"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert "prototypes" in m and "fused" in r.stdout
    r = CliRunner().invoke(cli, ["evaluate", str(out), "--data", str(world), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["location"] == m["location"]  # the saved cosine head evaluates the same
    probs = load_prior(out).probs(np.array([[0.0, 0.0], [10.0, 20.0]]))
    assert probs.shape == (2, len(dataset.classes)) and bool(((probs > 0) & (probs < 1)).all())
