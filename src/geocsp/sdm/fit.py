"""Fitting an SDM on presences (with species labels) and background points.

Each step takes a batch of B presences and B background points drawn at random from the
background pool; the presences give ``logits`` and ``labels``, the background gives
``bg_logits``, and a presence-only loss from ``FINETUNE_LOSSES`` (``full``, ``an_full``,
``an_ssdl``, ``an_slds``) is minimised with Adam. Background points get a day of year
drawn from the presences' dates (missing ones included), so time alone does not separate
presences from background. Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geocsp.config import to_dict
from geocsp.errors import ConfigError
from geocsp.sdm.covariates import Standardizer
from geocsp.sdm.model import SDM, FittedSDM, SDMConfig
from geocsp.sdm.records import Points

LOSSES = ("full", "an_full", "an_ssdl", "an_slds")


@dataclass(frozen=True)
class FitOptions:
    """Optimisation settings.

    Args:
        loss: presence-only loss name.
        epochs: passes over the presences.
        min_steps: at least this many optimiser steps (small data sets get more epochs).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: presences (and background points) per step.
        seed: seed of initialisation, batching and background draws.
        device: ``cpu``, ``cuda``, ``cuda:0``... or ``auto``.
    """

    loss: str = "full"
    epochs: int = 30
    min_steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError("--epochs and batch size must be >= 1, --lr > 0, weight decay >= 0")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: unknown device {name!r}") from None


def load_init_encoder(path: str | Path):
    """A pre-trained LocationEncoder from an encoder dir or a pre-train run (``RUN/encoder``).

    Raises:
        CheckpointError: when no encoder is found there.
    """
    from geocsp.nets.location_encoder import load_pretrained

    p = Path(path)
    d = p / "encoder" if (p / "encoder" / "config.json").is_file() else p
    return load_pretrained(d)[0]


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
        init_dir: pre-trained encoder directory for the position tower, or None.
        species: species order (default: sorted names in ``pres``).

    Returns:
        The fitted model (eval mode, on the chosen device).

    Raises:
        ConfigError: an_slds with one species; an incompatible --init encoder.
    """
    from dataclasses import replace

    from geocsp.objectives import create_finetune_loss

    assert pres.species is not None
    names = species or sorted(set(pres.species.tolist()))
    if options.loss == "an_slds" and len(names) < 2:
        raise ConfigError("--loss an_slds needs at least two species (it contrasts species at a location)")
    index = {s: i for i, s in enumerate(names)}
    labels = np.array([index[s] for s in pres.species], dtype=np.int64)
    k = pres.covariates.shape[1]
    cov_names = list(covariate_names) if covariate_names is not None else [f"c{i}" for i in range(k)]
    if len(cov_names) != k:
        raise ConfigError(f"{len(cov_names)} covariate names for {k} covariate columns")
    std = Standardizer.fit(cov_names, np.vstack([pres.covariates, bg.covariates]))
    config = replace(config, num_species=len(names), num_covariates=len(cov_names))
    if init_dir is not None:
        enc = load_init_encoder(init_dir)
        config = replace(config, position={**to_dict(enc.config), "extra_dim": 0})
    torch.manual_seed(options.seed)
    model = SDM(config)
    if init_dir is not None:
        model.init_position(enc)
    device = resolve_device(options.device)
    model.to(device)
    loss_fn = create_finetune_loss(options.loss)
    _train(model, loss_fn, _tensors(pres, std, device), _tensors(bg, std, device), labels, options, device)
    return FittedSDM(model.eval(), list(names), std, list(rasters), {"loss": options.loss, "epochs": options.epochs,
                                                          "lr": options.lr, "seed": options.seed})


def _tensors(p: Points, std: Standardizer, device: torch.device) -> tuple[torch.Tensor, ...]:
    z = std.transform(p.covariates) if p.covariates.shape[1] else p.covariates.astype(np.float32)
    return (
        torch.as_tensor(p.lonlat, dtype=torch.float32, device=device),
        torch.as_tensor(z, dtype=torch.float32, device=device),
        torch.as_tensor(p.doy, dtype=torch.float32, device=device),
    )


def _train(model: SDM, loss_fn, pres_t, bg_t, labels: np.ndarray, opt: FitOptions, device: torch.device) -> None:
    """The Adam loop; background rows and their dates are drawn per step."""
    y = torch.as_tensor(labels, device=device)
    n, m = len(labels), bg_t[0].shape[0]
    gen = torch.Generator().manual_seed(opt.seed)
    optim = torch.optim.Adam(model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
    bs = min(opt.batch_size, n)
    per_epoch = -(-n // bs)
    epochs = max(opt.epochs, -(-opt.min_steps // per_epoch))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            b = len(idx)
            bidx = torch.randint(0, m, (b,), generator=gen).to(device)
            didx = torch.randint(0, n, (b,), generator=gen).to(device)
            logits = model(pres_t[0][idx], pres_t[1][idx], pres_t[2][idx])
            bg_logits = model(bg_t[0][bidx], bg_t[1][bidx], pres_t[2][didx])
            loss = loss_fn(logits, y[idx], bg_logits).total
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
    model.eval()
