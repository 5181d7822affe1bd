"""The library's own training steps and evaluation, built at the inat-scale shapes on
synthetic tensors (items 1-3 of issue 6).

Nothing here re-implements a model: the steps are ``geocsp.training.pretrain.make_step``
and ``geocsp.training.finetune.make_step`` driven by ``geocsp.training.loop.train_step``,
on a :class:`~geocsp.training.data.TrainRows` store built from in-memory splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

INAT = {"train_rows": 437_513, "feature_dim": 2048, "num_classes": 8142, "val_rows": 24_426}


@dataclass
class FakeSplit:
    """The attributes of ``geocsp.data.Split`` that ``TrainRows`` reads."""

    name: str
    lonlat: np.ndarray
    labels: np.ndarray
    features: np.ndarray | None

    @property
    def has_location(self) -> np.ndarray:
        return ~np.isnan(self.lonlat).any(axis=1)

    def __len__(self) -> int:
        return len(self.lonlat)


def synthetic_split(rows: int, feature_dim: int, num_classes: int, seed: int = 0) -> FakeSplit:
    """Uniform locations, random labels and standard-normal float32 features."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, rows)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, rows)))
    feats = None
    if feature_dim:
        feats = rng.standard_normal((rows, feature_dim), dtype=np.float32)
    labels = rng.integers(0, num_classes, rows)
    return FakeSplit("train", np.stack([lon, lat], 1), labels, feats)


def configs(device: str, precision: str, compile_: bool | str, batch: int) -> tuple[Any, Any]:
    """The ``paper-inat2018`` pre-train and fine-tune configs with these run settings."""
    from geocsp.training import FinetuneConfig, PretrainConfig, resolve_config

    mode = str(compile_).lower() if isinstance(compile_, bool) else compile_  # true / false / a torch.compile mode
    sets = [f"device={device}", f"precision={precision}", f"compile={mode}",
            "quiet=true", f"data.batch_size={batch}"]
    pre = resolve_config(PretrainConfig, stage="pretrain", preset="paper-inat2018", overrides=sets)
    ft = resolve_config(FinetuneConfig, stage="finetune", preset="paper-inat2018", overrides=sets)
    return pre, ft


def _stepper(model: torch.nn.Module, step: Callable[..., Any], n_rows: int, batch: int,
             device: torch.device, precision: str, optim: Any) -> Callable[[], Any]:
    try:
        from geocsp.training.loop import train_step
    except ImportError:  # a geocsp from before the loop exposed its step (A/B runs)
        train_step = _train_step
    try:
        from geocsp.training.loop import make_optimizer
    except ImportError:  # a geocsp from before make_optimizer (A/B runs)
        def make_optimizer(params: Any, optim: Any, _device: torch.device) -> Any:
            return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, optim, device)
    gen = torch.Generator(device=device).manual_seed(0)
    perm = torch.Generator().manual_seed(1)
    model.train()

    def run() -> Any:
        idx = torch.randint(0, n_rows, (batch,), generator=perm)
        return train_step(opt, step, idx, gen, device, precision)

    return run


def _train_step(opt: Any, step: Callable[..., Any], idx: torch.Tensor, gen: torch.Generator,
                device: torch.device, precision: str) -> Any:
    from geocsp.runtime import autocast

    opt.zero_grad(set_to_none=True)
    with autocast(device, precision):
        out = step(idx, gen)
    out.total.backward()
    opt.step()
    return out


def pretrain_stepper(split: FakeSplit, batch: int, device: torch.device, precision: str,
                     compile_: bool | str) -> Callable[[], Any]:
    """One CSP-MC-BLD optimisation step at the paper-inat2018 settings per call."""
    from geocsp.data.samplers import create_location_sampler
    from geocsp.training.data import TrainRows
    from geocsp.training.pretrain import build_pretrain_model, make_step

    cfg, _ = configs(device.type, precision, compile_, batch)
    rows = TrainRows([split], device, need_features=True, need_labels=True)
    model = build_pretrain_model(cfg, rows.feature_dim).to(device)
    neg = create_location_sampler(cfg.data.negatives.name, **cfg.data.negatives.args)
    step = make_step(model, rows, neg, cfg.compile)
    return _stepper(model, step, len(rows), batch, device, precision, cfg.optim)


def finetune_stepper(split: FakeSplit, num_classes: int, batch: int, device: torch.device,
                     precision: str, compile_: bool | str) -> Callable[[], Any]:
    """One full-loss fine-tuning step (Q classes, background locations) per call."""
    from geocsp.data.samplers import create_location_sampler
    from geocsp.objectives import create_finetune_loss
    from geocsp.training.data import TrainRows
    from geocsp.training.finetune import build_finetune_model, make_step

    _, cfg = configs(device.type, precision, compile_, batch)
    rows = TrainRows([split], device, need_features=False, need_labels=True)
    model = build_finetune_model(cfg, num_classes).to(device)
    loss = create_finetune_loss(cfg.loss.name, **cfg.loss.args).to(device)
    neg = create_location_sampler(cfg.data.negatives.name, **cfg.data.negatives.args)
    step = make_step(model, rows, loss, neg, cfg.compile)
    return _stepper(model, step, len(rows), batch, device, precision, cfg.optim)


def evaluation_runner(rows: int, num_classes: int, device: torch.device, precision: str,
                      batch: int = 4096, topk: int = 100) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(location probabilities, metrics) callables of the evaluation of ``rows`` val rows.

    The image probabilities are dense float32 renormalised top-``topk`` rows, as
    ``Split.probs`` returns for the inat-scale world's sparse files; 1 % of the rows have
    no location.
    """
    from geocsp.evaluation import evaluate_scores
    from geocsp.runtime import autocast
    from geocsp.training.finetune import build_finetune_model
    from geocsp.training.inference import location_probs

    _, cfg = configs(device.type, precision, False, batch)
    model = build_finetune_model(cfg, num_classes).to(device).eval()
    split = synthetic_split(rows, 0, num_classes, seed=2)
    has = np.random.default_rng(3).random(rows) > 0.01
    lonlat = np.where(has[:, None], split.lonlat, np.nan)
    img = _topk_probs(rows, num_classes, topk)
    state: dict[str, Any] = {}

    def logits(x: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            return model["head"](model["encoder"](x)).float()

    def loc(probs_fn: Callable[..., Any] = location_probs) -> Any:
        """P(y|x) of every row; ``probs_fn`` has ``location_probs``' signature (A/B of variants)."""
        state["loc"] = probs_fn(logits, model, lonlat, has, num_classes, batch, device)
        return state["loc"]

    def metrics() -> Any:
        return evaluate_scores(img, state["loc"], split.labels, has, beta=1.0, batch_size=batch,
                               device=device)

    return loc, metrics


def _topk_probs(rows: int, q: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    out = np.zeros((rows, q), np.float32)
    cols = rng.integers(0, q, (rows, k))  # a repeated column keeps one of its values
    vals = rng.random((rows, k), dtype=np.float32)
    np.put_along_axis(out, cols, vals / vals.sum(1, keepdims=True), axis=1)
    return out
