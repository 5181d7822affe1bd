"""Pre-training on the small GeoWorld: loss goes down, what is trained, run dir, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import geocsp.training.loop as loop
from geocsp.errors import DatasetError
from geocsp.io import load_checkpoint_dir
from geocsp.nets import LocationEncoder
from geocsp.objectives import PretrainBatch
from geocsp.training import PretrainConfig, pretrain, resolve_config
from geocsp.training.pretrain import build_pretrain_model, pretrain_rows


def _cfg(tiny: list[str], *extra: str) -> PretrainConfig:
    return resolve_config(PretrainConfig, stage="pretrain", overrides=[*tiny, *extra])


def test_pretrain_loss_decreases_and_run_dir(dataset, tiny, tmp_path: Path) -> None:
    run = tmp_path / "pre"
    metrics = pretrain(_cfg(tiny, "data.epochs=4"), dataset, run)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["loss"] < log[0]["loss"] - 0.1
    assert set(log[0]) >= {"loss", "L_B", "L_L", "L_D", "lr", "samples_per_s"}
    # train (3000) + unlabeled (6000) rows with a location and features, each once per epoch
    n = int((dataset.split("train").has_location).sum() + dataset.split("unlabeled").has_location.sum())
    assert log[0]["samples"] == n
    assert metrics == json.loads((run / "metrics.json").read_text())
    assert metrics["epoch"] == 4 and metrics["loss"] == log[-1]["loss"]
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "log.jsonl", "metrics.json", "checkpoints", "encoder"}
    assert (run / "checkpoints" / "latest").read_text().strip() == "epoch-0004"
    enc = LocationEncoder.from_pretrained(run / "encoder")
    tensors, meta = load_checkpoint_dir(run / "encoder")
    assert enc.dim == 32 and tensors["projection.weight"].shape == (32, 32)
    assert meta["projection"]["kind"] == "linear" and meta["img_dim"] == 32


def test_only_projection_and_encoder_get_gradients(dataset, tiny) -> None:
    cfg = _cfg(tiny, "projection.kind=mlp", "projection.hidden=16")
    rows = pretrain_rows(cfg, dataset, torch.device("cpu"))
    model = build_pretrain_model(cfg, rows.feature_dim)
    idx = torch.arange(64)
    neg = torch.rand(64, 1, 2) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
    batch = PretrainBatch(rows.lonlat[idx], rows.features(idx), neg)
    model["objective"](batch, model["encoder"], model["projection"]).total.backward()
    for name, p in model.named_parameters():
        trained = name.startswith(("encoder.", "projection."))
        assert (p.grad is not None and bool(p.grad.abs().sum() > 0)) == trained, name
    assert len(list(model["projection"].parameters())) == 4  # the MLP option


def test_features_are_gathered_from_both_splits(dataset, tiny) -> None:
    rows = pretrain_rows(_cfg(tiny), dataset, torch.device("cpu"))
    tr, un = dataset.split("train"), dataset.split("unlabeled")
    n_tr = int(tr.has_location.sum())
    idx = torch.tensor([0, n_tr + 5, n_tr - 1])
    want = np.stack([tr.features[np.flatnonzero(tr.has_location)[0]],
                     un.features[np.flatnonzero(un.has_location)[5]],
                     tr.features[np.flatnonzero(tr.has_location)[-1]]]).astype(np.float32)
    np.testing.assert_array_equal(rows.features(idx).numpy(), want)


def test_balanced_sampler_uses_only_labelled_rows(dataset, tiny, tmp_path: Path) -> None:
    cfg = _cfg(tiny, "data.sampler=balanced", "data.max_per_class=5", "data.epochs=1")
    rows = pretrain_rows(cfg, dataset, torch.device("cpu"))
    assert (rows.labels_np >= 0).all()
    pretrain(cfg, dataset, tmp_path / "bal")
    log = json.loads((tmp_path / "bal" / "log.jsonl").read_text().splitlines()[0])
    assert log["samples"] == 5 * len(dataset.classes)


def test_no_usable_rows_is_a_dataset_error(dataset) -> None:
    from geocsp.training.data import TrainRows

    with pytest.raises(DatasetError, match="splits unlabeled: no rows with a location and labels"):
        TrainRows([dataset.split("unlabeled")], torch.device("cpu"), need_features=False, need_labels=True)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_is_exact(dataset, tiny, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tiny, "data.epochs=3")
    full = pretrain(cfg, dataset, tmp_path / "full")
    real = loop.run_epoch

    def dying(spec, epoch):
        if epoch == 2:  # dies in the middle of the last epoch, after checkpoint epoch-0002
            real(spec, epoch)
            raise _Interrupt
        return real(spec, epoch)

    monkeypatch.setattr(loop, "run_epoch", dying)
    with pytest.raises(_Interrupt):
        pretrain(cfg, dataset, tmp_path / "cut")
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.setattr(loop, "run_epoch", real)
    resumed = pretrain(cfg, dataset, tmp_path / "cut")
    assert resumed == full
    a, _ = load_checkpoint_dir(tmp_path / "full" / "encoder")
    b, _ = load_checkpoint_dir(tmp_path / "cut" / "encoder")
    assert all(torch.equal(a[k], b[k]) for k in a)
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_bf16_autocast_keeps_float32_master_weights(dataset, tiny, tmp_path: Path) -> None:
    m = pretrain(_cfg(tiny, "data.epochs=1", "precision=bf16"), dataset, tmp_path / "bf16")
    assert np.isfinite(m["loss"])
    enc = LocationEncoder.from_pretrained(tmp_path / "bf16" / "encoder")
    assert {p.dtype for p in enc.parameters()} == {torch.float32}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["true", "reduce-overhead"])
def test_compile_trains_like_eager(dataset, tiny, tmp_path: Path, mode: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``compile`` (each mode; on a CPU, ``reduce-overhead`` differs only by CUDA graphs) runs
    the same computation: with torch's random numbers kept (``fallback_random``, so dropout
    draws the eager masks) the epoch losses match eager to float32 reassociation."""
    import torch._inductor.config as inductor

    try:  # on a CPU, inductor needs a working C++ toolchain (compiler and Python headers)
        torch.compile(lambda x: x * 2)(torch.ones(2))
    except Exception as e:  # whatever the toolchain raises
        pytest.skip(f"torch.compile does not work on this machine: {type(e).__name__}")

    monkeypatch.setattr(inductor, "fallback_random", True)
    torch._dynamo.reset()
    eager = pretrain(_cfg(tiny, "data.epochs=2"), dataset, tmp_path / "eager")
    from torch._dynamo.utils import counters

    counters.clear()
    compiled = pretrain(_cfg(tiny, "data.epochs=2", f"compile={mode}"), dataset, tmp_path / "compiled")
    assert counters["stats"]["unique_graphs"] >= 1  # it did compile
    log = [json.loads(x) for x in (tmp_path / "compiled" / "log.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "eager" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in ref], rel=1e-4)
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-4)
