"""Supervised fine-tuning of the location prior P(y|x) = sigmoid(T e(x)) (spec §5).

Starts from a pre-trained encoder (``init``) or from random initialisation ("Sup. Only"),
adds a new class matrix T (Q x d, no bias), and trains on a stratified λ-subset of the
labelled ``train`` rows with a ``FINETUNE_LOSSES`` loss (default the presence-only
``full`` loss with random background locations). lr at epoch e is ``lr * 0.98**e``.

Deviation from the reference (spec §9.2.7): by default a fresh Adam is created here; the
reference carries the pre-training Adam moments over into fine-tuning
(``optim_from_init: true`` does so: :func:`~geocsp.training.unfreeze.carry_adam_state`).

How much of a pre-trained encoder moves (frozen, partial, full) is
:mod:`geocsp.training.unfreeze`; ``early_stop`` chooses the epoch on ``calib``
(:mod:`geocsp.training.earlystop`).

With the ``distill`` loss each step also draws soft-target rows (``unlabeled`` and the
train rows outside the labelled subset, with the image classifier's probabilities of the
run's ratio; :mod:`geocsp.training.distill`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from geocsp.checkpoints import PRIOR_DIR, load_encoder
from geocsp.config import to_dict
from geocsp.data import GeoDataset
from geocsp.data.samplers import create_location_sampler
from geocsp.data.splits import training_subset
from geocsp.data.subset_file import pin_subset
from geocsp.distributed import DistInfo, barrier, ddp_step, init_distributed, main_first
from geocsp.encoders import ENCODERS
from geocsp.errors import ConfigError
from geocsp.nets import NETWORKS, LocationEncoder, LocationEncoderConfig
from geocsp.objectives import create_finetune_loss
from geocsp.objectives.distill import DistillLoss
from geocsp.prior import GeoPrior
from geocsp.prior.heads import CosineHead
from geocsp.prior.kde import ClassKDE
from geocsp.prior.prior import Companion
from geocsp.runtime import resolve_device
from geocsp.training.config import EvaluateConfig, FinetuneConfig
from geocsp.training.data import TrainRows, as_dataset, epoch_sampler
from geocsp.training.distill import SoftRows, run_soft_rows
from geocsp.training.earlystop import CalibSelector, calib_scorer
from geocsp.training.evaluate import (
    FusionSource,
    calib_split,
    eval_probs_key,
    evaluate_split,
    fusion_source,
)
from geocsp.training.kde import check_kde_data, fit_class_kde
from geocsp.training.loop import (
    LoopSpec,
    make_optimizer,
    maybe_compile,
    result_fields,
    seed_all,
    train_epochs,
)
from geocsp.training.pretrain import _last_record
from geocsp.training.prototypes import init_prototype_head
from geocsp.training.rundir import CLASSES_FILE, RunDir
from geocsp.training.select import select_model
from geocsp.training.unfreeze import carry_adam_state, mode_setter, optimizer_params
from geocsp.training.zeroshot import check_zeroshot_data, fit_zeroshot_companion


def build_finetune_model(cfg: FinetuneConfig, num_classes: int) -> nn.ModuleDict:
    """Seeded ``{"encoder", "head"}``: the (pre-trained or new) encoder and T (Q x d).

    With ``head_init: prototypes`` the head is a :class:`CosineHead`, set from the labelled
    subset later (:func:`~geocsp.training.prototypes.init_prototype_head`).
    """
    seed_all(cfg.seed)
    if cfg.init is not None:
        encoder = load_encoder(cfg.init)
        check_init_architecture(cfg, to_dict(encoder.config))
    else:
        encoder = LocationEncoder(cfg.model)
    if getattr(encoder.config, "extra_dim", 0):
        raise ConfigError("model.extra_dim > 0 (covariates) is not supported by geocsp finetune yet")
    head: nn.Module = nn.Linear(int(encoder.dim), num_classes, bias=False)
    if cfg.head_init == "prototypes":
        head = CosineHead(torch.zeros(num_classes, int(encoder.dim)), 1.0, 0.0)
    if cfg.encoder_frozen:
        encoder.requires_grad_(False)
    return nn.ModuleDict({"encoder": encoder, "head": head})


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b": v}`` for every non-dict value of a nested dict."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def _canonical(key: str, value: Any) -> Any:
    registry = {"encoder": ENCODERS, "network": NETWORKS}.get(key)
    return registry.canonical(value) if registry is not None and isinstance(value, str) else value


def check_init_architecture(cfg: FinetuneConfig, saved_model: dict[str, Any]) -> None:
    """Refuse model fields that were set for a run whose architecture comes from ``init``.

    A ``model.*`` field that differs from the default (set by ``--set``, ``--config`` or a
    preset) must equal the init checkpoint's: it would otherwise be ignored while the run's
    config.yaml records it.

    Args:
        cfg: the resolved fine-tune config, with ``init`` set.
        saved_model: the init encoder's (resolved) ``LocationEncoderConfig`` as a dict.

    Raises:
        ConfigError: ``model.dim: the architecture comes from --init RUN (32), not 64;
            remove --set model.dim or drop --init``.
    """
    default, saved = _leaves(to_dict(LocationEncoderConfig())), _leaves(saved_model)
    for key, value in _leaves(to_dict(cfg.model)).items():
        if key in default and value == default[key]:
            continue
        if key not in saved or _canonical(key, value) != _canonical(key, saved[key]):
            raise ConfigError(
                f"model.{key}: the architecture comes from --init {cfg.init} "
                f"({saved.get(key, 'unset')!r}, not {value!r}); remove --set model.{key} or drop --init"
            )


def make_step(model: nn.ModuleDict, rows: TrainRows, loss: nn.Module, sampler: Any,
              compile_: bool | str, info: DistInfo | None = None,
              soft: SoftRows | None = None) -> Callable[[Tensor, torch.Generator], Any]:
    """Per-batch loss: one encoder pass over [x; background; soft rows] (dropout on), logits via T.

    With ``soft`` (loss ``distill``), each step also draws ``loss.config.batch_size`` soft-target
    rows (after the background, from the same generator) and adds the loss's soft term.
    Under DDP when ``info`` is distributed.
    """
    encode = maybe_compile(model["encoder"], compile_)
    head = model["head"]
    needs_bg = bool(getattr(loss, "needs_background", False))
    distill = cast(DistillLoss, loss)
    n_soft = int(distill.config.batch_size) if soft is not None else 0

    def compute(_m: nn.Module, x: Tensor, y: Tensor, bg: Tensor | None,
                drawn: tuple[Tensor, Tensor, Tensor, Tensor | None] | None = None) -> Any:
        if bg is None and drawn is None:
            return loss(head(encode(x)), y, None)
        parts = [x, *([bg] if bg is not None else []), *([drawn[0]] if drawn is not None else [])]
        emb = encode(torch.cat(parts, 0))  # one pass: dropout masks per row
        b = x.shape[0]  # the head runs per part: slicing (2B, Q) logits would fill zero grads
        nb = bg.shape[0] if bg is not None else 0
        out = loss(head(emb[:b]), y, head(emb[b : b + nb]) if bg is not None else None)
        if drawn is None:
            return out
        return distill.combine(out, distill.soft(head(emb[b + nb :]), *drawn[1:]))

    run_loss = ddp_step(model, compute, info or DistInfo())

    def step(idx: Tensor, gen: torch.Generator) -> Any:
        dev_idx = idx.to(rows.device, non_blocking=True)
        x = rows.lonlat.index_select(0, dev_idx)
        y = rows.labels.index_select(0, dev_idx)
        bg = sampler.sample(x.shape[0], gen, device=rows.device) if needs_bg else None
        if soft is None:
            return run_loss(x, y, bg)
        return run_loss(x, y, bg, soft.draw(n_soft, gen))

    return step


def finetune(config: FinetuneConfig, data: GeoDataset | str | Path, run_dir: str | Path,
             init: str | Path | None = None, *, overwrite: bool = False) -> dict[str, Any]:
    """Fine-tune a location prior and evaluate it on ``val``.

    Rerunning on the same ``run_dir`` with the same config resumes from the last complete
    checkpoint and ends with the same metrics as an uninterrupted run.

    Args:
        config: the resolved run config.
        data: a geocsp dataset or its directory; needs a labelled ``train`` split.
        run_dir: output directory; receives ``prior/`` (:class:`GeoPrior`), ``classes.json``,
            ``subset/``, ``metrics.json``, log and checkpoints.
        init: pre-training run or encoder directory (overrides ``config.init``); None and
            ``config.init`` None = "Sup. Only" from random initialisation.
        overwrite: discard an earlier run in ``run_dir`` instead of resuming or refusing.

    Returns:
        The metrics written to ``metrics.json``: the ``val`` evaluation (``image``,
        ``location``, ``fused``, ``fused_calibrated``, ``fusion`` ...: see
        :func:`~geocsp.training.evaluate.evaluate_split`) when the dataset has a labelled ``val`` split with
        image probabilities, plus a ``train`` entry with the final epoch's loss and, with
        ``early_stop``, an ``early_stop`` entry (the calib-chosen epoch whose weights are the
        prior: :mod:`geocsp.training.earlystop`).

    Raises:
        ConfigError: on an invalid component or a config differing from the saved one.
        CheckpointError: when ``init`` holds no encoder.
        DatasetError: when there are no labelled rows with a location.
    """
    if init is not None:
        config = dataclasses.replace(config, init=str(init))
    info = init_distributed(config.device)  # torchrun: join the job (no-op otherwise)
    rank, world = info.rank, info.world_size
    if info.distributed and config.unfreeze_after:
        raise ConfigError("finetune.unfreeze_after is not supported under torchrun (DDP needs a fixed set of "
                          "trained parameters); run it on one process")
    ds = as_dataset(data)
    device = info.device if info.distributed else resolve_device(config.device)
    rows = TrainRows([ds.split("train")], device, need_features=False, need_labels=True)
    model = build_finetune_model(config, len(ds.classes)).to(device)
    selector = _selector(model, ds, config)  # early_stop: refuses a dataset without calib before any work
    check_kde_data(config.kde, ds, config.ratio)  # kde.shrink=cv, a fused score's calib probabilities
    check_zeroshot_data(config, ds)  # zeroshot_pool: likewise
    _check_val_probs(ds, config)  # the final evaluation's image probabilities, before any training
    loss = create_finetune_loss(config.loss.name, **config.loss.args).to(device)
    sampler = create_location_sampler(config.data.negatives.name, **config.data.negatives.args)
    run = RunDir(run_dir, rank)
    train = ds.split("train")
    if config.subset is not None:  # validated, and its SHA-256 pinned in config.yaml, before the run dir is touched
        config = dataclasses.replace(config, subset_sha256=pin_subset(config.subset, train.labels, config.subset_sha256))
    with run:  # the run lock is held until the outputs are written
        main_first(lambda: run.prepare(to_dict(config), overwrite=overwrite))  # once all builds; rank 0 first
        positions = main_first(lambda: training_subset(run.path, train.labels, train.has_location, config.ratio,
                                                        config.seed, config.subset))
        rows = rows.subset(positions)
        selected = select_model(config, ds, run.path, finetune)  # None unless select.candidates
        if selected is not None:  # the chosen model, built as a run of its own would build it
            config, model = selected.config, build_finetune_model(selected.config, len(ds.classes)).to(device)
            selector = _selector(model, ds, config)
        proto = None if config.head_init != "prototypes" else dataclasses.asdict(
            init_prototype_head(model, ds, config.init, positions, loss, sampler, config.seed))
        soft = run_soft_rows(loss, ds, config.ratio, positions, device)
        optimizer = make_optimizer(optimizer_params(model, config), config.optim, device)
        if config.optim_from_init:
            carry_adam_state(optimizer, model, config.init)
        order = epoch_sampler(config.data, rows.labels_np, config.seed, rank, world)
        val = _val_eval(model, ds, config) if config.eval_every else None  # val is read after selection
        spec = LoopSpec(
            stage="finetune", run=run, module=model, optimizer=optimizer, epochs=config.data.epochs,
            seed=config.seed, lr_at=lambda e: config.optim.lr * config.optim.lr_decay**e,
            epoch_indices=order.epoch_indices,
            step=make_step(model, rows, loss, sampler, config.compile, info, soft),
            batch_size=config.data.batch_size, device=device, precision=config.precision,
            set_mode=mode_setter(model, config), evaluate=val, hook=selector,
            eval_every=config.eval_every, checkpoint_every=config.checkpoint_every,
            keep_checkpoints=config.keep_checkpoints, quiet=config.quiet, rank=rank,
        )
        history = train_epochs(spec)
        chosen = selector.finish() if selector is not None else None  # the best calib epoch's weights
        extra = {"early_stop": chosen, "select": selected.record if selected else None, "prototypes": proto,
                 "kde": _attach_kde(model, ds, config, positions, device),
                 "zeroshot_pool": _attach_zeroshot(model, ds, config, positions, loss, sampler, device)}
        metrics = _finish(run, model, ds, config, val or _val_eval(model, ds, config), history, extra)
    barrier()  # rank 0's outputs are complete before any rank returns
    return metrics


def _attach_kde(model: nn.ModuleDict, ds: GeoDataset, cfg: FinetuneConfig, positions: Any,
                device: torch.device) -> dict[str, Any] | None:
    """With ``kde``: fit the class KDE (:mod:`geocsp.training.kde`) and add it as ``model["kde"]``."""
    if not cfg.kde.enabled:
        return None
    model.eval()

    @torch.no_grad()
    def net(x: Tensor) -> Tensor:
        return cast(Tensor, model["head"](model["encoder"](x.to(device))))

    kde, record = fit_class_kde(cfg.kde, ds, positions, cfg.seed, net, cfg.ratio)
    model["kde"] = kde.to(device)
    return record


def _attach_zeroshot(model: nn.ModuleDict, ds: GeoDataset, cfg: FinetuneConfig, positions: Any, loss: nn.Module,
                     sampler: Any, device: torch.device) -> dict[str, Any] | None:
    """With ``zeroshot_pool``: add the weighted zero-shot prior (:mod:`geocsp.training.zeroshot`) as ``model["companion"]``."""
    if not cfg.zeroshot_pool:
        return None
    model.eval()
    companion, record = fit_zeroshot_companion(cfg, ds, positions, loss, sampler, _model_logits(model), build_finetune_model,
                                               device)
    model["companion"] = companion
    return record


def _model_logits(model: nn.ModuleDict) -> Callable[[Tensor], Tensor]:
    """The prior's logits: network, pooled with the class KDE and plus the companion once they are fitted."""

    def logits(x: Tensor) -> Tensor:
        out = model["head"](model["encoder"](x))
        out = cast(ClassKDE, model["kde"]).pool_logits(out, x) if "kde" in model else out
        return out + model["companion"](x) if "companion" in model else out

    return logits


def _selector(model: nn.ModuleDict, ds: GeoDataset, cfg: FinetuneConfig) -> CalibSelector | None:
    """The early-stopping hook on calib (None when ``early_stop`` is off)."""
    if cfg.early_stop == "off":
        return None
    return CalibSelector(cfg.early_stop, calib_scorer(cfg, ds, model, _eval_config(cfg)), model, cfg.patience)


class _ValEval(Protocol):
    def __call__(self, epoch: int, source: FusionSource | None = None) -> dict[str, Any]: ...


def _check_val_probs(ds: GeoDataset, cfg: FinetuneConfig) -> None:
    """Refuse a ``val`` split without the run ratio's image probabilities, before any work.

    The final evaluation would fail after training. Checked before the run directory is
    touched, from the stored key names only: no val row is looked at before the end.

    Raises:
        DatasetError: as :func:`~geocsp.training.inference.resolve_probs_key`.
    """
    if "val" in ds:
        eval_probs_key(ds.split("val"), _eval_config(cfg), cfg.ratio)


def _val_eval(model: nn.ModuleDict, ds: GeoDataset, cfg: FinetuneConfig) -> _ValEval | None:
    """The ``val`` evaluation of the in-memory model, or None without a usable val split.

    ``evaluate(epoch, source)`` takes the calibrated fusion's source; None = the ``calib``
    split when the dataset has one (the per-epoch evaluations; the final one may cross-fit).
    """
    if "val" not in ds:
        return None
    split = ds.split("val")
    if split.labels is None or not (split.labels >= 0).any():
        return None
    ecfg = _eval_config(cfg)
    calib = calib_split(ds, ecfg)

    logits = _model_logits(model)

    def evaluate(epoch: int, source: FusionSource | None = None) -> dict[str, Any]:
        return evaluate_split(logits, model, split, len(ds.classes), ecfg, cfg.ratio,
                              calib if source is None else source)

    return evaluate


def _eval_config(cfg: FinetuneConfig) -> EvaluateConfig:
    # EvaluateConfig wants K >= 2; its folds are only read when cross-fitting is on
    return EvaluateConfig(split="val", probs_key="auto", beta=cfg.beta, device=cfg.device,
                          crossfit_folds=max(cfg.crossfit_folds, 2), fusion_criterion=cfg.fusion_criterion)


def _final_source(run: RunDir, ds: GeoDataset, cfg: FinetuneConfig) -> FusionSource | None:
    """The final evaluation's calibrated-fusion source: calib, else the opt-in cross-fit, else None."""
    ecfg = _eval_config(cfg)
    if cfg.crossfit_folds < 2:  # off: calib, else none with the reason (or a finished cross-fit of this run)
        return fusion_source(ds, ecfg, cfg.ratio, run_dir=run.path)
    fold_cfg = dataclasses.replace(cfg, crossfit_folds=0, eval_every=0, quiet=True)
    return fusion_source(ds, ecfg, cfg.ratio, run_dir=run.path, config=fold_cfg, refit=finetune)


def _finish(run: RunDir, model: nn.ModuleDict, ds: GeoDataset, cfg: FinetuneConfig, val: _ValEval | None,
            history: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """Save the prior and classes, evaluate on val (cross-fitting first when asked), write metrics.json.

    ``extra``: records added to the metrics when not None: ``early_stop`` (the early-stopping
    choice, its weights already loaded), ``select`` (the architecture selection) and
    ``prototypes`` (the prototype head's fit, ``head_init: prototypes``).
    """
    last = _last_record(run, history)
    train = result_fields(last)
    metrics: dict[str, Any] = {}
    if val is not None:
        metrics = dict(val(int(last.get("epoch", 0)), _final_source(run, ds, cfg)))
    metrics["train"] = train
    metrics.update({k: v for k, v in extra.items() if v is not None})
    if run.writer:
        head = model["head"]
        cosine = {"scale": head.scale.detach(), "bias": head.bias.detach()} if isinstance(head, CosineHead) else {}
        kde = cast(ClassKDE, model["kde"]) if "kde" in model else None
        companion = cast(Companion, model["companion"]) if "companion" in model else None
        prior = GeoPrior(cast(LocationEncoder, model["encoder"]), cast(Tensor, head.weight).detach(), ds.classes,
                         **cosine, kde=kde, companion=companion)
        prior.save_pretrained(run.path / PRIOR_DIR)
        (run.path / CLASSES_FILE).write_text(json.dumps(list(ds.classes)) + "\n")
        run.write_metrics(metrics)
    return metrics
