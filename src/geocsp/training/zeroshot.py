"""The CSP zero-shot prior pooled with the fine-tuned prior (``finetune.zeroshot_pool``, issue 16 item 1).

After fine-tuning, the run also builds the CSP zero-shot prior of its labelled subset — the
pre-trained encoder (``init``, before fine-tuning) with a prototype head
(:func:`~geocsp.training.prototypes.init_prototype_head`: the ``csp-zeroshot`` method's prior,
same subset, loss and seed) — and adds it to the fine-tuned logits with a weight w::

    logit(x)_y = f_y(x) + w · z_y(x)        (f: fine-tuned, z: zero-shot)

a log-linear pooling of the two priors' odds (a product of experts). w is chosen from
:data:`ZS_WEIGHTS` (w = 0, the fine-tuned prior alone, included) by the class-balanced mean
location log-likelihood of the true class, P(y|x) normalised over classes, on the labelled
``calib`` split — never ``val``. The prior is saved with the zero-shot prior as its
:class:`~geocsp.prior.prior.Companion`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from geocsp.data import GeoDataset
from geocsp.errors import ConfigError
from geocsp.prior.heads import CosineHead
from geocsp.prior.prior import Companion, GeoPrior
from geocsp.training.config import FinetuneConfig
from geocsp.training.kde import labelled_calib, location_loglik
from geocsp.training.prototypes import check_prototype_source, init_prototype_head
from geocsp.training.select import balanced_mean

ZS_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
"""Weights w of the zero-shot logits tried on calib."""
CHUNK = 2048
"""Calib rows per scoring chunk."""


def check_zeroshot_data(cfg: FinetuneConfig, ds: GeoDataset) -> None:
    """Refuse ``zeroshot_pool`` without what it needs, before any training.

    It needs a CSP pre-training run with an image projection (``init``), train image features
    of the projection's width, and a labelled calib split.

    Raises:
        ConfigError, DatasetError: one line saying what is missing.
    """
    if not cfg.zeroshot_pool:
        return
    check_zeroshot_calib(cfg, ds)
    check_prototype_source(cfg.init, ds, "finetune.zeroshot_pool")


def check_zeroshot_calib(cfg: FinetuneConfig, ds: GeoDataset) -> None:
    """Refuse ``zeroshot_pool`` on a dataset without a labelled calib split (needs no ``init``).

    A protocol calls this before its pre-training runs exist.

    Raises:
        ConfigError: one line saying what to do instead.
    """
    if cfg.zeroshot_pool and labelled_calib(ds) is None:
        raise ConfigError("finetune.zeroshot_pool chooses the zero-shot prior's weight on a labelled 'calib' split, "
                          "which this dataset lacks; add one (geocsp data split --hold-out calib) or set "
                          "zeroshot_pool=false")


@torch.no_grad()
def weight_scores(net_logits: Callable[[Tensor], Tensor], zs_logits: Callable[[Tensor], Tensor],
                  lonlat: np.ndarray, labels: np.ndarray, weights: tuple[float, ...] = ZS_WEIGHTS,
                  device: Any = "cpu") -> dict[str, float]:
    """``{"w": class-balanced mean log P(y|x)}`` of the pooled logits ``f + w · z`` on these rows.

    Args:
        net_logits: (B, 2) lon/lat degrees -> (B, Q) logits f of the fine-tuned prior.
        zs_logits: the same for the zero-shot prior z.
        lonlat: (N, 2) scoring locations (degrees).
        labels: (N,) their classes.
        weights: the w to score.
        device: where the priors run.

    Returns:
        Scores keyed by ``f"{w:g}"``.
    """
    ll = {w: np.empty(len(labels)) for w in weights}
    for start in range(0, len(labels), CHUNK):
        x = torch.as_tensor(lonlat[start : start + CHUNK], dtype=torch.float32, device=device)
        f, z = net_logits(x).double().cpu(), zs_logits(x).double().cpu()
        y = torch.as_tensor(labels[start : start + CHUNK], dtype=torch.long)
        for w in weights:
            ll[w][start : start + CHUNK] = location_loglik(f + w * z, y).numpy()
    return {f"{w:g}": balanced_mean(v, labels) for w, v in ll.items()}


def fit_zeroshot_companion(cfg: FinetuneConfig, ds: GeoDataset, positions: np.ndarray, loss: nn.Module,
                           sampler: Any, net_logits: Callable[[Tensor], Tensor], build: Callable[..., nn.ModuleDict],
                           device: torch.device) -> tuple[Companion, dict[str, Any]]:
    """The run's zero-shot prior and its chosen weight (module docs).

    Args:
        cfg: the run's config (``init``, ``seed``; ``zeroshot_pool`` on).
        ds: the dataset (``train`` subset rows and ``calib`` are read; never ``val``).
        positions: the run's labelled subset (positions among the usable train rows).
        loss: the run's fine-tuning loss (fits the prototype head's scale and offset).
        sampler: the run's background-location sampler.
        net_logits: the fine-tuned prior's logits, eval mode.
        build: :func:`~geocsp.training.finetune.build_finetune_model`.
        device: where to build the zero-shot prior.

    Returns:
        (:class:`Companion`, ``{"weight", "weights_scores", "prototypes": {scale, bias, ...}}``).
    """
    check_zeroshot_calib(cfg, ds)  # init and train features: init_prototype_head checks them
    zs_cfg = dataclasses.replace(cfg, head_init="prototypes", zeroshot_pool=False, freeze_encoder=False,
                                 encoder_lr_scale=1.0, unfreeze_after=0)
    zs = build(zs_cfg, len(ds.classes)).to(device)
    fit = init_prototype_head(zs, ds, cfg.init, positions, loss, sampler, cfg.seed)
    head = zs["head"]
    assert isinstance(head, CosineHead)
    prior = GeoPrior(zs["encoder"], head.weight.detach(), ds.classes, scale=head.scale.detach(),
                     bias=head.bias.detach()).eval()
    found = labelled_calib(ds)
    assert found is not None  # check_zeroshot_calib
    calib, labels, keep = found
    scores = weight_scores(net_logits, prior.logits, np.asarray(calib.lonlat)[keep], labels[keep], device=device)
    best = max(scores, key=lambda w: scores[w])
    return Companion(prior, float(best)), {"weight": float(best), "weight_scores": scores,
                                           "prototypes": dataclasses.asdict(fit)}
