"""Distillation fine-tuning (loss ``distill``): the loss math, the soft rows, a run, Adam carry-over."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geocsp.config import from_dict, to_dict
from geocsp.data.splits import stratified_subset
from geocsp.errors import CheckpointError, ConfigError, DatasetError
from geocsp.objectives import create_finetune_loss
from geocsp.objectives.distill import DistillConfig, sharpen_targets
from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config
from geocsp.training.distill import class_weights, soft_rows, topk_rows

DISTILL = ["loss.name=distill", "loss.args={batch_size: 64, topk: 5}"]


def _ft(tiny: list[str], *extra: str) -> FinetuneConfig:
    return resolve_config(FinetuneConfig, stage="finetune", overrides=[*tiny, "data.batch_size=128", *extra])


@pytest.mark.parametrize(("args", "match"), [
    ({"threshold": 1.0}, "threshold"), ({"base": "distill"}, "base"), ({"mode": "kl"}, "mode"),
    ({"temperature": 0}, "temperature"), ({"splits": []}, "splits"), ({"weight": -1}, "weight"),
])
def test_config_is_validated(args: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_finetune_loss("distill", **args)


def test_config_round_trips() -> None:
    cfg = DistillConfig(base="ce", mode="soft", temperature=2.0, splits=("unlabeled",))
    assert from_dict(DistillConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_sharpen_targets_by_hand() -> None:
    t, keep = sharpen_targets(torch.tensor([[0.6, 0.4], [0.3, 0.2]]), temperature=0.5, threshold=0.5)
    np.testing.assert_allclose(t.numpy(), [[0.36 / 0.52, 0.16 / 0.52], [0.09 / 0.13, 0.04 / 0.13]], rtol=1e-6)
    assert keep.tolist() == [True, False]


def test_one_hot_soft_term_is_the_full_presence_term() -> None:
    torch.manual_seed(0)
    z, y = torch.randn(6, 9, dtype=torch.float64), torch.randint(0, 9, (6,))
    full = create_finetune_loss("full", bg_weight=0.0)(z, y, None).terms["presence"]
    loss = create_finetune_loss("distill", mode="soft", base_args={"bg_weight": 0.0})
    index = torch.stack([y, (y + 1) % 9], 1)  # the label plus a zero-target class
    targets = torch.tensor([[1.0, 0.0]] * 6, dtype=torch.float64)
    torch.testing.assert_close(loss.soft(z, index, targets), full)


def test_em_term_is_the_image_likelihood_under_the_prior() -> None:
    torch.manual_seed(1)
    z = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    index, t = torch.tensor([[0, 3], [1, 2], [6, 5], [4, 0]]), torch.tensor([[0.7, 0.3]] * 4, dtype=torch.float64)
    for base, prior in (("full", lambda v: torch.sigmoid(v) / torch.sigmoid(v).sum(1, keepdim=True)),
                        ("ce", lambda v: torch.softmax(v, 1))):
        got = create_finetune_loss("distill", base=base, base_args={})
        expected = -torch.log((prior(z).gather(1, index) * t).sum(1)).mean()
        torch.testing.assert_close(got.soft(z, index, t), expected)
    # the gradient is the cross-entropy to the posterior t * prior (one EM step)
    loss = create_finetune_loss("distill", base="ce")
    (g,) = torch.autograd.grad(loss.soft(z, index, t), z)
    post = torch.zeros(4, 7, dtype=torch.float64).scatter_(1, index, t * torch.softmax(z, 1).gather(1, index))
    post = post / post.sum(1, keepdim=True)
    torch.testing.assert_close(g, ((torch.softmax(z, 1) - post) / 4).detach())


def test_topk_rows_dense_and_sparse_agree() -> None:
    import scipy.sparse

    p = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]], np.float32)
    for probs in (p, scipy.sparse.csr_matrix(p)):
        idx, val = topk_rows(probs, np.array([1, 0]), 2)
        assert idx.tolist() == [[0, 1], [1, 2]]
        np.testing.assert_allclose(val, [[0.7, 0.2], [0.5, 0.4]])


def test_soft_rows_leave_out_the_labelled_subset(dataset) -> None:
    train, unl = dataset.split("train"), dataset.split("unlabeled")
    usable = np.flatnonzero(train.has_location & (train.labels >= 0))
    labelled = usable[stratified_subset(train.labels[usable], 0.1, 0)]
    cfg = DistillConfig(topk=5, mode="soft")
    rows = soft_rows(dataset, cfg, 0.1, labelled, torch.device("cpu"))
    n_train = int(train.has_location.sum()) - len(labelled)
    assert rows.sources == {"unlabeled": (int(unl.has_location.sum()), "ratio0.100"), "train": (n_train, "ratio0.100")}
    assert len(rows) == rows.sources["unlabeled"][0] + n_train and rows.index.shape == (len(rows), 5)
    torch.testing.assert_close(rows.targets.sum(1), torch.ones(len(rows)))
    # the unlabeled rows come first, in order, with that classifier's top class first
    top = np.asarray(unl.probs("ratio0.100", dense=False)[np.flatnonzero(unl.has_location)].argmax(1)).ravel()
    assert rows.index[: len(top), 0].tolist() == top.tolist()
    with pytest.raises(DatasetError, match=r"unlabeled.*ratio0\.300"):
        soft_rows(dataset, cfg, 0.3, labelled, torch.device("cpu"))
    # a threshold keeps exactly the rows whose top stored probability reaches it
    sure = soft_rows(dataset, DistillConfig(topk=5, threshold=0.9, mode="soft"), 0.1, labelled, torch.device("cpu"))
    tops = [np.asarray(s.probs("ratio0.100", dense=False)[r].max(1).todense()).ravel()
            for s, r in ((unl, np.flatnonzero(unl.has_location)),
                         (train, np.setdiff1d(np.flatnonzero(train.has_location), labelled)))]
    assert 0 < len(sure) == int((np.concatenate(tops) >= 0.9).sum()) < len(rows)


def test_distill_run_is_reproducible(dataset, tiny, tmp_path: Path) -> None:
    cfg = _ft(tiny, "ratio=0.1", "data.epochs=2", *DISTILL)
    a = finetune(cfg, dataset, tmp_path / "a")
    b = finetune(cfg, dataset, tmp_path / "b")
    assert a["train"] == b["train"] and "distill" in a["train"] and a["train"]["distill"] > 0
    assert a["fused"] == b["fused"]


@pytest.fixture(scope="module")
def pre_run(dataset, tiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("distill") / "pre"
    pretrain(resolve_config(PretrainConfig, overrides=[*tiny, "data.epochs=1"]), dataset, run)
    return run


def test_adam_carry_over(dataset, tiny, pre_run: Path, tmp_path: Path, monkeypatch) -> None:
    ft = importlib.import_module("geocsp.training.finetune")  # the package re-exports a function of that name
    seen = {}
    real = ft.carry_adam_state

    def spy(optimizer, model, init):
        n = real(optimizer, model, init)
        enc = list(model["encoder"].parameters())
        seen["state"] = [optimizer.state[p]["exp_avg"].abs().sum().item() for p in enc]
        seen["head"] = model["head"].weight in optimizer.state
        return n

    monkeypatch.setattr(ft, "carry_adam_state", spy)
    carried = finetune(_ft(tiny, "ratio=0.1", "data.epochs=1", "optim_from_init=true"), dataset, tmp_path / "c",
                       init=pre_run)
    fresh = finetune(_ft(tiny, "ratio=0.1", "data.epochs=1"), dataset, tmp_path / "f", init=pre_run)
    assert seen["state"] and all(s > 0 for s in seen["state"]) and not seen["head"]
    assert carried["train"]["loss"] != fresh["train"]["loss"]
    with pytest.raises(CheckpointError, match="optim_from_init"):
        finetune(_ft(tiny, "ratio=0.1", "data.epochs=1", "optim_from_init=true"), dataset, tmp_path / "e",
                 init=pre_run / "encoder")  # an encoder directory: weights, no optimizer state
    with pytest.raises(ConfigError, match="freeze_encoder"):
        _ft(tiny, "optim_from_init=true", "freeze_encoder=true")


def test_class_weights_by_hand() -> None:
    index = torch.tensor([[0], [0], [0], [0], [1], [1]])
    w = class_weights(index, torch.ones(6, 1), num_classes=3)
    torch.testing.assert_close(w, torch.tensor([2 / 3, 4 / 3, 0.0]))
    # a mass below one row is floored at one row
    torch.testing.assert_close(class_weights(torch.tensor([[0, 1]]), torch.tensor([[0.9, 0.1]])), torch.ones(2))


def test_class_weight_scales_positive_terms_and_em_rows() -> None:
    torch.manual_seed(2)
    z, index = torch.randn(3, 5, dtype=torch.float64), torch.tensor([[0, 1], [2, 3], [4, 0]])
    t = torch.tensor([[0.5, 0.5]] * 3, dtype=torch.float64)
    ones = torch.ones(3, 2, dtype=torch.float64)
    for mode in ("soft", "em"):
        loss = create_finetune_loss("distill", mode=mode)
        torch.testing.assert_close(loss.soft(z, index, t, ones), loss.soft(z, index, t))
    em = create_finetune_loss("distill", mode="em")
    row = torch.tensor([[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    per_row = torch.stack([em.soft(z[i : i + 1], index[i : i + 1], t[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(em.soft(z, index, t, row), (per_row * torch.tensor([2.0, 0.0, 1.0])).mean())
