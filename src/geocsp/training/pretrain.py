"""CSP pre-training: a location encoder e(x) and an image projection W (spec §3.4, §4).

Pairs are (location, frozen image feature) rows of the ``train`` split and, when present
and ``data.use_unlabeled``, the ``unlabeled`` split. Labels are not used by the loss; the
``balanced`` epoch sampler (the reference's default, spec §4.6 / §9.2.4) does use them to
choose which pairs an epoch sees, so with it only labelled rows are drawn.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from geocsp.checkpoints import ENCODER_DIR
from geocsp.config import to_dict
from geocsp.data import GeoDataset
from geocsp.data.samplers import create_location_sampler
from geocsp.distributed import (
    DistInfo,
    barrier,
    ddp_step,
    init_distributed,
    main_first,
    make_dist_context,
)
from geocsp.errors import ConfigError
from geocsp.nets import LocationEncoder
from geocsp.objectives import PretrainBatch, create_objective
from geocsp.runtime import resolve_device
from geocsp.training.config import PretrainConfig, ProjectionConfig
from geocsp.training.data import TrainRows, as_dataset, epoch_sampler
from geocsp.training.loop import (
    LoopSpec,
    make_optimizer,
    maybe_compile,
    result_fields,
    seed_all,
    train_epochs,
)
from geocsp.training.rundir import LOG_FILE, RunDir


def build_projection(cfg: ProjectionConfig, in_dim: int, out_dim: int) -> nn.Module:
    """The image projection W: (B, D) features -> (B, d).

    ``linear`` is one Linear with bias (reference code); ``mlp`` is Linear -> ReLU -> Linear.
    """
    if cfg.kind == "linear":
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, out_dim))


def build_pretrain_model(cfg: PretrainConfig, feature_dim: int) -> nn.ModuleDict:
    """Seeded ``{"encoder", "projection", "objective"}`` modules.

    The objective may hold parameters (a learnable temperature) or buffers (a queue).
    """
    if cfg.model.extra_dim:
        raise ConfigError("model.extra_dim > 0 (covariates) is not supported by geocsp pretrain yet")
    seed_all(cfg.seed)
    encoder = LocationEncoder(cfg.model)
    projection = build_projection(cfg.projection, feature_dim, encoder.dim)
    objective = create_objective(cfg.objective.name, loc_dim=encoder.dim, img_dim=feature_dim,
                                 **cfg.objective.args)
    return nn.ModuleDict({"encoder": encoder, "projection": projection, "objective": objective})


def pretrain_rows(cfg: PretrainConfig, ds: GeoDataset, device: torch.device) -> TrainRows:
    """The pre-training pairs: ``train`` (+ ``unlabeled``) rows with a location and features."""
    names = ["train"] + (["unlabeled"] if cfg.data.use_unlabeled and "unlabeled" in ds else [])
    balanced = cfg.data.sampler == "balanced"
    return TrainRows([ds.split(n) for n in names], device, need_features=True, need_labels=balanced)


def make_step(model: nn.ModuleDict, rows: TrainRows, sampler: Any, compile_: bool | str,
              info: DistInfo | None = None) -> Callable[[Tensor, torch.Generator], Any]:
    """The per-batch loss closure: gather pairs, draw C negatives per row, run the objective.

    With a distributed ``info`` the step runs under DDP and the objective's in-batch terms
    use all ranks' rows as columns (docs/distributed.md).
    """
    encode_loc = maybe_compile(model["encoder"], compile_)
    encode_img = maybe_compile(model["projection"], compile_)
    objective = model["objective"]
    c = int(cast(Any, objective).num_negatives)
    info = info or DistInfo()
    dist = make_dist_context(info)
    run_loss = ddp_step(model, lambda _m, batch: objective(batch, encode_loc, encode_img, dist), info,
                        find_unused_parameters=not objective.uses_image_projection)

    def step(idx: Tensor, gen: torch.Generator) -> Any:
        dev_idx = idx.to(rows.device, non_blocking=True)
        lonlat = rows.lonlat.index_select(0, dev_idx)
        neg = None
        if c > 0:
            neg = sampler.sample(idx.shape[0] * c, gen, device=rows.device).reshape(-1, c, 2)
        batch = PretrainBatch(lonlat=lonlat, feats=rows.features(idx), neg_lonlat=neg)
        return run_loss(batch)

    return step


def _val_loss(model: nn.ModuleDict, rows: TrainRows | None, sampler: Any, cfg: PretrainConfig,
              device: torch.device) -> Callable[[int], dict[str, Any]] | None:
    """Objective on the ``val`` pairs with dropout off and fixed negatives (logged)."""
    if rows is None:
        return None
    step = make_step(model, rows, sampler, False)

    def evaluate(epoch: int) -> dict[str, Any]:
        model.eval()
        gen = torch.Generator(device=device)
        gen.manual_seed(cfg.seed)
        total, n = 0.0, 0
        with torch.no_grad():
            for idx in torch.arange(len(rows)).split(cfg.data.batch_size):
                total += float(step(idx, gen).total) * idx.shape[0]
                n += idx.shape[0]
        return {"loss": total / max(n, 1)}

    return evaluate


def pretrain(config: PretrainConfig, data: GeoDataset | str | Path, run_dir: str | Path, *,
             overwrite: bool = False) -> dict[str, Any]:
    """Pre-train a location encoder with a contrastive objective (CSP).

    Rerunning on the same ``run_dir`` with the same config resumes from the last complete
    checkpoint and ends with the same result as an uninterrupted run.

    Args:
        config: the resolved run config.
        data: a geocsp dataset or its directory; needs a ``train`` split with features.
        run_dir: output directory; receives ``encoder/`` (``LocationEncoder.save_pretrained``
            with W as extra tensors ``projection.*``), ``metrics.json``, log and checkpoints.
        overwrite: discard an earlier run in ``run_dir`` instead of resuming or refusing.

    Returns:
        The metrics written to ``metrics.json`` (final epoch's mean loss and terms).

    Raises:
        ConfigError: on an invalid component name/argument or a config differing from the
            run dir's saved one.
        DatasetError: when the dataset has no usable pairs.
    """
    info = init_distributed(config.device)  # torchrun: join the job (no-op otherwise)
    rank, world = info.rank, info.world_size
    ds = as_dataset(data)
    device = info.device if info.distributed else resolve_device(config.device)
    rows = pretrain_rows(config, ds, device)
    model = build_pretrain_model(config, rows.feature_dim).to(device)
    sampler = create_location_sampler(config.data.negatives.name, **config.data.negatives.args)
    run = RunDir(run_dir, rank)
    with run:  # the run lock is held until the outputs are written
        main_first(lambda: run.prepare(to_dict(config), overwrite=overwrite))  # once all builds; rank 0 first
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(params, config.optim, device)
        order = epoch_sampler(config.data, rows.labels_np, config.seed, rank, world)
        val = None
        if config.eval_every and "val" in ds and ds.split("val").features is not None:
            val = TrainRows([ds.split("val")], device, need_features=True, need_labels=False)
        spec = LoopSpec(
            stage="pretrain", run=run, module=model, optimizer=optimizer, epochs=config.data.epochs,
            seed=config.seed, lr_at=lambda e: config.optim.lr * config.optim.lr_decay**e,
            epoch_indices=order.epoch_indices, step=make_step(model, rows, sampler, config.compile, info),
            batch_size=config.data.batch_size, device=device, precision=config.precision,
            evaluate=_val_loss(model, val, sampler, config, device), eval_every=config.eval_every,
            checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
            quiet=config.quiet, rank=rank,
        )
        history = train_epochs(spec)
        metrics = _finish(run, model, config, rows.feature_dim, history)
    barrier()  # rank 0's outputs are complete before any rank returns
    return metrics


def _finish(run: RunDir, model: nn.ModuleDict, cfg: PretrainConfig, feature_dim: int,
            history: list[dict[str, Any]]) -> dict[str, Any]:
    """Save the encoder (+ W) and write metrics.json from the final epoch's log record."""
    last = _last_record(run, history)
    metrics = {"stage": "pretrain", **result_fields(last)}
    if run.writer:
        proj = {f"projection.{k}": v for k, v in model["projection"].state_dict().items()}
        extra = {"projection": to_dict(cfg.projection), "img_dim": feature_dim,
                 "objective": to_dict(cfg.objective)}
        encoder = cast(LocationEncoder, model["encoder"])
        encoder.save_pretrained(run.path / ENCODER_DIR, extra_tensors=proj, extra_config=extra)
        run.write_metrics(metrics)
    return metrics


def _last_record(run: RunDir, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last epoch record of this call, or of the log when nothing was left to run."""
    if history:
        return history[-1]
    p = run.path / LOG_FILE
    lines = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.is_file() else []
    return lines[-1] if lines else {"epoch": 0}
