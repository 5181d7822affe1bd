"""Early stopping on calib: the best calib epoch's weights become the prior, val is never read to choose."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import geocsp.training.earlystop as es
from geocsp.data import GeoDataset
from geocsp.errors import ConfigError
from geocsp.prior import GeoPrior
from geocsp.training import FinetuneConfig, RunDir, finetune, resolve_config
from geocsp.training.rundir import load_tensors

from .resume_helpers import interrupted_and_full
from .test_crossfit import TINY, _watched, _world

ft = importlib.import_module("geocsp.training.finetune")  # the package re-exports a function of that name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GeoDataset:
    return _world(tmp_path_factory.mktemp("w") / "calib", calib=True, train_probs=False)


def _cfg(*extra: str) -> FinetuneConfig:
    return resolve_config(FinetuneConfig, overrides=[*TINY, "keep_checkpoints=10", *extra])


def _prior_tensors(run: Path) -> dict[str, torch.Tensor]:
    prior = GeoPrior.from_pretrained(run / "prior")
    return {**{f"encoder.{k}": v for k, v in prior.encoder.state_dict().items()},
            "head.weight": prior.classifier.weight.detach()}


def _checkpoint(run: Path, epoch: int) -> dict[str, torch.Tensor]:
    return load_tensors(RunDir(run).checkpoint_root / f"epoch-{epoch:04d}" / "model.safetensors")


def _same(prior: dict[str, torch.Tensor], ckpt: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, ckpt[k]) for k, v in prior.items())


def _log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def _scripted(monkeypatch: pytest.MonkeyPatch, scores: list[float]) -> None:
    """Replace the calib scorer by one returning ``scores`` in turn (a constructed case)."""
    def scorer(*_a: Any, **_k: Any) -> Any:
        it: Iterator[float] = iter(scores)
        return lambda: {"score": next(it)}

    monkeypatch.setattr(ft, "calib_scorer", scorer)


def test_the_best_calib_epoch_becomes_the_prior(world: GeoDataset, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted(monkeypatch, [0.2, 0.5, 0.4, 0.5, 0.1])  # best at epoch 2; the tie at 4 keeps the earlier
    m = finetune(_cfg("data.epochs=5", "early_stop=fused"), world, tmp_path / "r")
    assert m["early_stop"] == {"criterion": "fused", "split": "calib", "epoch": 2, "score": 0.5, "epochs_run": 5,
                               "stopped_early": False}
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["early_stop"]["epoch"] == 2
    prior = _prior_tensors(tmp_path / "r")
    assert _same(prior, _checkpoint(tmp_path / "r", 2)) and not _same(prior, _checkpoint(tmp_path / "r", 5))
    assert [r["calib"]["score"] for r in _log(tmp_path / "r")] == [0.2, 0.5, 0.4, 0.5, 0.1]
    assert m["train"]["epoch"] == 5 and "calib" not in m["train"]


def test_patience_stops_training(world: GeoDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted(monkeypatch, [0.3, 0.6, 0.5, 0.55, 0.9, 0.9])
    m = finetune(_cfg("data.epochs=6", "early_stop=location", "patience=2"), world, tmp_path / "r")
    assert m["early_stop"]["epoch"] == 2 and m["early_stop"]["epochs_run"] == 4 and m["early_stop"]["stopped_early"]
    assert len(_log(tmp_path / "r")) == 4 and _same(_prior_tensors(tmp_path / "r"), _checkpoint(tmp_path / "r", 2))
    again = finetune(_cfg("data.epochs=6", "early_stop=location", "patience=2"), world, tmp_path / "r")
    assert again == m and len(_log(tmp_path / "r")) == 4  # a rerun resumes the stopped run: nothing more


@pytest.mark.parametrize("criterion", ["fused", "location"])
def test_real_criterion_picks_the_argmax_of_the_logged_calib_scores(world: GeoDataset, tmp_path: Path,
                                                                    criterion: str) -> None:
    """Scoring on calib does not change training: the prior is the plain run's checkpoint of the chosen epoch."""
    plain = tmp_path / "plain"
    finetune(_cfg("data.epochs=4"), world, plain)
    m = finetune(_cfg("data.epochs=4", f"early_stop={criterion}"), world, tmp_path / "es")
    scores = [r["calib"]["score"] for r in _log(tmp_path / "es")]
    best = scores.index(max(scores)) + 1
    assert m["early_stop"]["epoch"] == best and m["early_stop"]["score"] == max(scores)
    assert _same(_prior_tensors(tmp_path / "es"), _checkpoint(plain, best))
    first = _log(tmp_path / "es")[0]["calib"]
    assert first["n"] == 16 and (criterion == "location") == (first["score"] == -first["nll"])


def test_val_is_never_read_while_choosing(world: GeoDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    real = es.CalibSelector.finish

    def marked(self: es.CalibSelector) -> dict[str, Any]:
        out = real(self)
        log.append("CHOSEN")
        return out

    monkeypatch.setattr(es.CalibSelector, "finish", marked)
    m = finetune(_cfg("data.epochs=3", "early_stop=fused"), _watched(world, log), tmp_path / "r")
    end = log.index("CHOSEN")
    assert [e for e in log[:end] if e.startswith("val.")] == [] and any(e.startswith("calib.") for e in log[:end])
    assert "val.labels" in log[end:] and m["fused"]["n"] == 24  # the final evaluation reads val afterwards


def test_resume_chooses_the_same_epoch(world: GeoDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg("data.epochs=4", "early_stop=location", "checkpoint_every=2")
    full, cut = interrupted_and_full(cfg, world, tmp_path, monkeypatch)
    assert cut == full
    assert _same(_prior_tensors(tmp_path / "cut"), _prior_tensors(tmp_path / "full"))


def test_without_calib_early_stopping_is_one_line_before_any_work(tmp_path: Path) -> None:
    bare = _world(tmp_path / "bare", calib=False, train_probs=False)
    with pytest.raises(ConfigError, match="no labelled 'calib' split to choose the epoch on") as err:
        finetune(_cfg("early_stop=fused"), bare, tmp_path / "r")
    assert "\n" not in str(err.value) and not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="patience needs early_stop"):
        _cfg("patience=3")
