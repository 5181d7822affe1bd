"""CSP zero-shot: a prior from class prototypes in the shared location-image space (issue 16).

CSP pre-training learns e(x) and an image projection W such that cos(e(x), W f(I)) is high
for a pair seen together. The prototype of class y is the normalised mean of the
normalised projected features of class y's labelled images in the run's subset::

    t_y = normalise( Σ_{i: y_i = y} W f_i / ‖W f_i‖ )

and the zero-shot prior is P(y|x) = sigmoid(s · cos(e(x), t_y) + b), a
:class:`~geocsp.prior.heads.CosineHead` (``finetune.head_init: prototypes``). A class
without a labelled row in the subset gets t_y = 0: cos = 0, so its P(y|x) = sigmoid(b) is
the same everywhere (the prior says nothing about it; the fusion then ranks it by P(y|I)).

The scale s and the offset b (one for all classes) are fitted on the labelled subset only
(never ``val``), by minimising the run's own fine-tuning loss (default the presence-only
``full`` loss) over s > 0 and b with e(x) fixed (eval mode, no dropout): the positives are
the subset's rows, the background are ``max(n, 2048)`` random locations from the run's
background sampler, seeded by the run's seed. Fine-tuning (``data.epochs`` > 0) then
starts from this head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geocsp.checkpoints import ENCODER_DIR, find_artifact
from geocsp.data import GeoDataset
from geocsp.data.splits import usable_rows
from geocsp.errors import CheckpointError, ConfigError, DatasetError
from geocsp.nets.location_encoder import KIND as ENCODER_KIND
from geocsp.nets.location_encoder import load_pretrained
from geocsp.pretrained import pretrained_name
from geocsp.prior.heads import CosineHead
from geocsp.training.config import ProjectionConfig
from geocsp.training.pretrain import build_projection

MIN_BACKGROUND = 2048
"""Fewest random background locations of the scale / offset fit."""


@dataclass(frozen=True)
class PrototypeFit:
    """What :func:`init_prototype_head` set (logged in the run's metrics).

    Args:
        scale: s of ``s · cos + b``.
        bias: b.
        empty_classes: classes without a labelled row in the subset (zero prototype).
        loss: the fine-tuning loss at (s, b) on the subset and the background.
    """

    scale: float
    bias: float
    empty_classes: int
    loss: float


def class_prototypes(proj: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Normalised class means of normalised projected image features.

    Args:
        proj: (n, d) projected features W f(I) of the labelled rows.
        labels: (n,) int64 classes in [0, Q).
        num_classes: Q.

    Returns:
        (Q, d) unit prototypes; the zero vector for a class without a row.

    >>> p = class_prototypes(torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 0]), 2)
    >>> [[round(v, 4) for v in row] for row in p.tolist()]
    [[0.7071, 0.7071], [0.0, 0.0]]
    """
    u = F.normalize(proj.float(), dim=-1)
    sums = torch.zeros(num_classes, u.shape[1], dtype=u.dtype, device=u.device)
    sums.index_add_(0, labels.long().to(u.device), u)
    return F.normalize(sums, dim=-1)  # a zero row stays zero


def load_projection(init: str, option: str = "head_init=prototypes") -> nn.Module:
    """The image projection W saved beside a pre-training run's encoder.

    Args:
        init: a pre-training run directory or its ``encoder/`` directory.
        option: the setting that needs it, named in errors.

    Returns:
        W as a module (B, D) -> (B, d), in eval mode.

    Raises:
        ConfigError: when ``init`` holds no encoder with an image projection (a prior, a
            released encoder such as ``geoclip``, or an encoder saved without one).
    """
    fix = (f"{option} needs init = a CSP pre-training run (geocsp pretrain) whose "
           "image projection maps images into the location space")
    if pretrained_name(init) is not None:
        raise ConfigError(f"{init}: a released encoder has no image projection; {fix}")
    try:
        directory, _ = find_artifact(init, [ENCODER_KIND])
        _, extras, meta = load_pretrained(directory)
    except CheckpointError as e:
        raise ConfigError(f"{init}: no pre-trained encoder ({ENCODER_DIR}/) found ({e}); {fix}") from None
    tensors = {k.removeprefix("projection."): v for k, v in extras.items() if k.startswith("projection.")}
    if not tensors or "img_dim" not in meta or "projection" not in meta:
        raise ConfigError(f"{init}: the encoder has no image projection; {fix}")
    proj = build_projection(ProjectionConfig(**meta["projection"]), int(meta["img_dim"]),
                            int(meta["config"]["dim"]))
    proj.load_state_dict(tensors)
    return proj.eval()


def check_prototype_source(init: str | None, ds: GeoDataset, option: str = "head_init=prototypes") -> nn.Module:
    """Everything class prototypes need, checked before any training: W and the train features.

    Args:
        init: the pre-training run (its image projection W), or None.
        ds: the dataset.
        option: the setting that needs prototypes, named in errors.

    Returns:
        W (:func:`load_projection`).

    Raises:
        ConfigError: without ``init`` or when it has no image projection.
        DatasetError: when the train split has no image features or their width is not W's.
    """
    if init is None:
        raise ConfigError(f"{option} needs --init: a CSP pre-training run (geocsp pretrain) "
                          "whose image projection maps images into the location space")
    proj = load_projection(init, option)
    train = ds.split("train")
    if train.features is None:
        raise DatasetError(f"{option}: the train split has no image features")
    dim, want = int(train.features.shape[1]), next(m.in_features for m in proj.modules() if isinstance(m, nn.Linear))
    if dim != want:
        raise DatasetError(f"{option}: the train split's image features have {dim} dims but the image "
                           f"projection of {init} takes {want}")
    return proj


def fit_scale_bias(cos_pos: Tensor, labels: Tensor, cos_bg: Tensor | None, loss: nn.Module,
                   steps: int = 50) -> tuple[float, float, float]:
    """(s, b, loss) minimising ``loss(s·cos_pos + b, labels, s·cos_bg + b)`` over s > 0 and b.

    L-BFGS on (log s, b) in float64 from s = 10, b = 0, full batch: deterministic.

    Args:
        cos_pos: (n, Q) cosines of the labelled rows' embeddings to the prototypes.
        labels: (n,) their classes.
        cos_bg: (m, Q) cosines at background locations, or None when the loss needs none.
        loss: a fine-tuning loss ``(logits, labels, bg_logits) -> LossOutput``.
        steps: L-BFGS iterations.

    Returns:
        s, b and the loss there.
    """
    log_s = torch.tensor(np.log(10.0), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    pos, bg = cos_pos.double(), None if cos_bg is None else cos_bg.double()
    opt = torch.optim.LBFGS([log_s, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def value() -> Tensor:
        s = log_s.exp()
        return loss(s * pos + b, labels, None if bg is None else s * bg + b).total

    def closure() -> Tensor:
        opt.zero_grad()
        out = value()
        out.backward()
        return out

    opt.step(closure)
    with torch.no_grad():
        return float(log_s.exp()), float(b), float(value())


@torch.no_grad()
def _embed(encoder: nn.Module, lonlat: Tensor, chunk: int = 8192) -> Tensor:
    return torch.cat([encoder(lonlat[i : i + chunk]) for i in range(0, lonlat.shape[0], chunk)])


def init_prototype_head(model: nn.ModuleDict, ds: GeoDataset, init: str | None, positions: np.ndarray,
                        loss: nn.Module, sampler: Any, seed: int) -> PrototypeFit:
    """Set ``model["head"]`` (a :class:`CosineHead`) to the prototypes of the labelled subset.

    Reads only the ``train`` split's subset rows (locations, labels, features).

    Args:
        model: ``{"encoder", "head"}`` of a fine-tuning run; the encoder is the init's.
        ds: the dataset.
        init: the pre-training run (its image projection W).
        positions: the run's labelled subset, as positions among the usable train rows.
        loss: the run's fine-tuning loss (fits s and b).
        sampler: the run's background-location sampler.
        seed: seeds the background draw.

    Returns:
        The fitted :class:`PrototypeFit`.

    Raises:
        ConfigError: without ``init`` or when it has no image projection.
        DatasetError: when the train split has no image features (or not W's width).
    """
    proj = check_prototype_source(init, ds)
    head, encoder = model["head"], model["encoder"]
    assert isinstance(head, CosineHead)
    train = ds.split("train")
    assert train.features is not None  # check_prototype_source
    assert train.labels is not None  # fine-tuning refuses a train split without labels
    rows = usable_rows(train.labels, train.has_location)[np.asarray(positions, np.int64)]
    device = head.weight.device
    labels = torch.as_tensor(np.asarray(train.labels)[rows], dtype=torch.long, device=device)
    lonlat = torch.as_tensor(np.asarray(train.lonlat)[rows], dtype=torch.float32, device=device)
    feats = torch.as_tensor(np.asarray(train.features[rows], dtype=np.float32), device=device)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            protos = class_prototypes(proj.to(device)(feats), labels, head.weight.shape[0])
            gen = torch.Generator(device=device)
            gen.manual_seed(seed)
            need_bg = bool(getattr(loss, "needs_background", False))
            bg = sampler.sample(max(len(rows), MIN_BACKGROUND), gen, device=device) if need_bg else None
            t = protos.T
            cos_pos = F.normalize(_embed(encoder, lonlat), dim=-1) @ t
            cos_bg = None if bg is None else F.normalize(_embed(encoder, bg), dim=-1) @ t
    finally:
        encoder.train(was_training)
    s, b, value = fit_scale_bias(cos_pos, labels, cos_bg, loss)
    with torch.no_grad():
        head.weight.copy_(protos)
        head.scale.fill_(s)
        head.bias.fill_(b)
    return PrototypeFit(s, b, int((protos.abs().sum(1) == 0).sum()), value)
