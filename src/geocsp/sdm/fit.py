"""Fitting an SDM on presences (with species labels) and background points.

Each step takes a batch of B presences and B background points drawn at random from the
background pool; the presences give ``logits`` and ``labels``, the background gives
``bg_logits``, and a presence-only loss from :mod:`geocsp.objectives` (:data:`LOSSES`) is
minimised with Adam. Background points get a day of year drawn from the presences' dates
(missing ones included), so time alone does not separate presences from background.

The step, the optimizer and the seeding are the shared ones of
:mod:`geocsp.training.loop` (:func:`train_step`, :func:`make_optimizer`, :func:`seed_all`,
:func:`iter_batches`). The epoch driver is SDM's own: one generator seeded once draws
every epoch's order and every step's background rows (no per-epoch reseeding, no
checkpoints: an SDM fit is short and is written once, at the end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocsp._registry import Registry
from geocsp.checkpoints import load_encoder
from geocsp.config import to_dict
from geocsp.errors import ConfigError
from geocsp.objectives import create_finetune_loss
from geocsp.runtime import resolve_device
from geocsp.sdm.config import LOSSES, FitOptions
from geocsp.sdm.covariates import Standardizer
from geocsp.sdm.kde import SpeciesKDE
from geocsp.sdm.model import SDM, FittedSDM, SDMConfig
from geocsp.sdm.records import Points
from geocsp.training.config import OptimConfig
from geocsp.training.loop import iter_batches, make_optimizer, seed_all, train_step

__all__ = ["LOSSES", "SDM_MODELS", "FitOptions", "fit_kde", "fit_sdm"]

SDM_MODELS: Registry[Callable[..., FittedSDM]] = Registry("sdm model")
"""``sdm fit --model``: name -> fit function ``(pres, bg, ...) -> FittedSDM``."""

Inputs = tuple[Tensor, Tensor, Tensor]
"""(lonlat (N, 2) degrees, standardised covariates (N, K), day of year (N,)) on the device."""


@SDM_MODELS.register("neural")
def fit_sdm(
    pres: Points,
    bg: Points,
    config: SDMConfig,
    options: FitOptions,
    *,
    covariate_names: list[str] | None = None,
    rasters: list[str] | tuple[str, ...] = (),
    init_dir: str | Path | None = None,
    species: list[str] | None = None,
) -> FittedSDM:
    """Fit one multi-species SDM.

    Args:
        pres: presences (species set, covariates (N, K) finite).
        bg: background points with the same covariates (M, K).
        config: architecture (``num_species`` and ``num_covariates`` are overwritten).
        options: optimisation settings.
        covariate_names: K covariate names (default ``c0 ... c{K-1}``).
        rasters: raster paths the covariates came from (stored with the model).
        init_dir: pre-trained encoder for the position tower (an encoder or prior
            directory, or a pre-train / fine-tune run), or None.
        species: species order (default: sorted names in ``pres``).

    Returns:
        The fitted model (eval mode, on the chosen device).

    Raises:
        ConfigError: an_slds with one species; an incompatible init encoder; covariate
            names that do not match the columns; an unknown device.
        CheckpointError: no encoder at ``init_dir``.
    """
    assert pres.species is not None
    names = species or sorted(set(pres.species.tolist()))
    if options.loss == "an_slds" and len(names) < 2:
        raise ConfigError("loss an_slds needs at least two species (it contrasts species at a location)")
    index = {s: i for i, s in enumerate(names)}
    labels = np.array([index[s] for s in pres.species], dtype=np.int64)
    k = pres.covariates.shape[1]
    cov_names = list(covariate_names) if covariate_names is not None else [f"c{i}" for i in range(k)]
    if len(cov_names) != k:
        raise ConfigError(f"{len(cov_names)} covariate names for {k} covariate columns")
    std = Standardizer.fit(cov_names, np.vstack([pres.covariates, bg.covariates]))
    config = replace(config, num_species=len(names), num_covariates=len(cov_names))
    enc = None
    if init_dir is not None:
        enc = load_encoder(init_dir)
        config = replace(config, position={**to_dict(enc.config), "extra_dim": 0})
    seed_all(options.seed)
    model = SDM(config)
    if enc is not None:
        model.init_position(enc)
    device = resolve_device(options.device)
    model.to(device)
    loss_fn = create_finetune_loss(options.loss)
    _train(model, loss_fn, _tensors(pres, std, device), _tensors(bg, std, device), labels, options, device)
    provenance = {"loss": options.loss, "epochs": options.epochs, "lr": options.lr, "seed": options.seed}
    return FittedSDM(model.eval(), list(names), std, list(rasters), provenance)


@SDM_MODELS.register("kde")
def fit_kde(pres: Points, bg: Points, bandwidth: str | float = "cv", *, species: list[str] | None = None) -> FittedSDM:
    """A KDE of each species' presences on coordinates (no network; :mod:`geocsp.sdm.kde`).

    Args:
        pres: presences (species set); covariates and dates are ignored.
        bg: background points (normalise each species' log density to its background mean).
        bandwidth: ``cv`` (leave-one-out likelihood), ``scott`` or km.
        species: species order (default: sorted names in ``pres``).

    Returns:
        The fitted model (``kind == "kde"``).

    Raises:
        ConfigError: points without coordinates, or an unknown bandwidth rule.
    """
    assert pres.species is not None
    if np.isnan(pres.lonlat).any():
        raise ConfigError("the kde model needs presence coordinates (lon_col/lat_col)")
    names = species or sorted(set(pres.species.tolist()))
    bg_ll = bg.lonlat[np.isfinite(bg.lonlat).all(axis=1)]
    kde = SpeciesKDE.fit(pres.lonlat, pres.species, bg_ll, bandwidth, names)
    provenance = {"model": "kde", "bandwidth": bandwidth, "bandwidth_km": kde.bandwidth_km.tolist()}
    return FittedSDM(None, list(names), Standardizer((), (), ()), [], provenance, kde, None)


def _tensors(p: Points, std: Standardizer, device: torch.device) -> Inputs:
    """The model inputs of ``p`` on ``device`` (covariates standardised)."""
    z = std.transform(p.covariates) if p.covariates.shape[1] else p.covariates.astype(np.float32)
    return (
        torch.as_tensor(p.lonlat, dtype=torch.float32, device=device),
        torch.as_tensor(z, dtype=torch.float32, device=device),
        torch.as_tensor(p.doy, dtype=torch.float32, device=device),
    )


def num_epochs(n: int, options: FitOptions) -> int:
    """Epochs to run: ``options.epochs``, more when needed to reach ``options.min_steps``.

    Args:
        n: number of presences (rows per epoch).
        options: the optimisation settings.

    Returns:
        The epoch count.
    """
    per_epoch = -(-n // min(options.batch_size, n))
    return max(options.epochs, -(-options.min_steps // per_epoch))


def _step_fn(model: SDM, loss_fn: Callable[..., Any], pres_t: Inputs, bg_t: Inputs, y: Tensor,
             device: torch.device) -> Callable[[Tensor, torch.Generator], Any]:
    """The loss of one batch: B presences ``idx`` plus B background rows and dates drawn from ``gen``."""
    n, m = y.shape[0], bg_t[0].shape[0]

    def step(idx: Tensor, gen: torch.Generator) -> Any:
        idx = idx.to(device)
        b = len(idx)
        bidx = torch.randint(0, m, (b,), generator=gen).to(device)
        didx = torch.randint(0, n, (b,), generator=gen).to(device)
        logits = model(pres_t[0][idx], pres_t[1][idx], pres_t[2][idx])
        bg_logits = model(bg_t[0][bidx], bg_t[1][bidx], pres_t[2][didx])
        return loss_fn(logits, y[idx], bg_logits)

    return step


def _train(model: SDM, loss_fn: Callable[..., Any], pres_t: Inputs, bg_t: Inputs, labels: np.ndarray,
           opt: FitOptions, device: torch.device) -> None:
    """Adam over every parameter; epoch orders, background rows and dates come from one seeded generator."""
    y = torch.as_tensor(labels, device=device)
    n = len(labels)
    gen = torch.Generator().manual_seed(opt.seed)
    optim = make_optimizer(list(model.parameters()), OptimConfig(lr=opt.lr, weight_decay=opt.weight_decay), device)
    step = _step_fn(model, loss_fn, pres_t, bg_t, y, device)
    model.train()
    for _ in range(num_epochs(n, opt)):
        perm = torch.randperm(n, generator=gen)
        for idx in iter_batches(perm, min(opt.batch_size, n)):
            train_step(optim, step, idx, gen, device)
    model.eval()
