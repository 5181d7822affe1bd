"""Fine-tuning: what is trained, the label subset, metrics.json, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import geocsp.training.loop as loop
from geocsp.data.splits import stratified_subset
from geocsp.errors import CheckpointError, DatasetError
from geocsp.nets import LocationEncoder
from geocsp.prior import GeoPrior
from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config
from geocsp.training.finetune import build_finetune_model

KEYS = {"top1", "top3", "top5", "top10", "mrr", "nll", "ece", "n"}


def _ft(tiny: list[str], *extra: str) -> FinetuneConfig:
    return resolve_config(FinetuneConfig, stage="finetune", overrides=[*tiny, "data.batch_size=128", *extra])


@pytest.fixture(scope="module")
def pre_run(dataset, tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("ft") / "pre"
    pretrain(resolve_config(PretrainConfig, overrides=[*tiny, "data.epochs=1"]), dataset, run)
    return run


def test_sup_only_metrics_and_run_dir(dataset, tiny, tmp_path: Path) -> None:
    run = tmp_path / "sup"
    m = finetune(_ft(tiny, "ratio=0.1", "data.epochs=2"), dataset, run)
    assert m == json.loads((run / "metrics.json").read_text())
    for key in ("image", "location", "fused"):
        assert set(m[key]) >= KEYS
    assert m["probs_key"] == "ratio0.100" and m["beta"] == 1.0 and m["split"] == "val"
    assert m["fused"]["n"] == len(dataset.split("val")) and m["train"]["epoch"] == 2
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "log.jsonl", "metrics.json", "checkpoints",
                                                "subset", "prior", "classes.json"}
    assert json.loads((run / "classes.json").read_text()) == list(dataset.classes)
    # the saved subset is the stratified subset of the labelled rows with a location
    tr = dataset.split("train")
    usable = tr.labels[tr.has_location & (tr.labels >= 0)]
    saved = np.load(next((run / "subset").glob("*.npy")))
    np.testing.assert_array_equal(saved, stratified_subset(usable, 0.1, 0))
    log = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    # balanced sampler (<= 100 per class) over the subset
    assert log["samples"] == int(np.minimum(np.bincount(usable[saved]), 100).sum())
    assert [json.loads(x)["lr"] for x in (run / "log.jsonl").read_text().splitlines()] == [1e-3, 1e-3 * 0.98]


def test_gradients_encoder_and_head_or_head_only(dataset, tiny, pre_run: Path) -> None:
    for frozen in (False, True):
        cfg = _ft(tiny, f"freeze_encoder={frozen}", f"init={pre_run}")
        model = build_finetune_model(cfg, len(dataset.classes))
        x = torch.tensor([[10.0, 45.0], [-70.0, -10.0]])
        model["head"](model["encoder"](x)).sigmoid().sum().backward()
        for name, p in model.named_parameters():
            want = name.startswith("head.") or (not frozen and name.startswith("encoder."))
            assert (p.grad is not None) == want, (frozen, name)
        assert model["head"].bias is None and model["head"].weight.shape == (len(dataset.classes), 32)


def test_init_loads_the_pretrained_encoder_and_frozen_stays_fixed(dataset, tiny, pre_run: Path,
                                                                   tmp_path: Path) -> None:
    finetune(_ft(tiny, "freeze_encoder=true", "data.epochs=2"), dataset, tmp_path / "probe", init=pre_run)
    a = LocationEncoder.from_pretrained(pre_run / "encoder").state_dict()
    b = GeoPrior.from_pretrained(tmp_path / "probe" / "prior").encoder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)
    assert "init: " + str(pre_run) in (tmp_path / "probe" / "config.yaml").read_text()
    with pytest.raises(CheckpointError, match="no location encoder found"):
        finetune(_ft(tiny), dataset, tmp_path / "bad", init=tmp_path)


def test_finetune_resume_gives_identical_metrics(dataset, tiny, pre_run: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _ft(tiny, "data.epochs=3", "ratio=0.2", "checkpoint_every=2")
    full = finetune(cfg, dataset, tmp_path / "full", init=pre_run)
    real = loop.run_epoch

    def dying(spec, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(spec, epoch)

    monkeypatch.setattr(loop, "run_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, dataset, tmp_path / "cut", init=pre_run)
    monkeypatch.setattr(loop, "run_epoch", real)
    assert finetune(cfg, dataset, tmp_path / "cut", init=pre_run) == full


def test_eval_every_logs_val_metrics(dataset, tiny, tmp_path: Path) -> None:
    m = finetune(_ft(tiny, "data.epochs=2", "eval_every=1", "ratio=0.1"), dataset, tmp_path / "ev")
    log = [json.loads(x) for x in (tmp_path / "ev" / "log.jsonl").read_text().splitlines()]
    assert [set(r["val"]) >= {"image", "location", "fused"} for r in log] == [True, True]
    assert log[-1]["val"]["fused"] == m["fused"]  # the final evaluation is the last epoch's


def test_model_fields_with_init_must_match_the_checkpoint(dataset, tiny, pre_run: Path, tmp_path: Path) -> None:
    """--set model.* with --init used to be ignored while config.yaml recorded it."""
    from geocsp.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"model.dim: the architecture comes from --init {pre_run} "
                                          r"\(32, not 64\); remove --set model.dim or drop --init"):
        finetune(_ft(tiny, "model.dim=64", f"init={pre_run}"), dataset, tmp_path / "a")
    with pytest.raises(ConfigError, match=r"model.encoder: the architecture comes from --init"):
        finetune(_ft(tiny, "model.encoder=sphereC+"), dataset, tmp_path / "b", init=pre_run)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # the same values as the checkpoint (tiny sets them for pre-training too) are fine
    model = build_finetune_model(_ft(tiny, f"init={pre_run}", "model.network=FFN"), len(dataset.classes))
    assert model["encoder"].dim == 32


def test_missing_val_probabilities_are_refused_before_training(dataset, tiny, tmp_path: Path) -> None:
    """The final evaluation needs val's probabilities of the run's ratio: without them the run
    is refused before anything is trained or written (it used to train, then fail, then leave
    a run that could not be evaluated)."""
    assert "ratio0.300" not in dataset.split("val").prob_keys
    with pytest.raises(DatasetError, match=r"split 'val' has no probabilities 'ratio0\.300'.*geocsp evaluate --probs-key"):
        finetune(_ft(tiny, "ratio=0.3", "data.epochs=1"), dataset, tmp_path / "ft")
    assert not (tmp_path / "ft").exists()
