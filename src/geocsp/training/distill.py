"""The soft-target rows of distillation fine-tuning (loss ``distill``, issue 16).

:func:`soft_rows` gathers, from the configured splits, every row with a location and the
image classifier's probabilities of the run's label ratio (top-k per row), sharpened and
thresholded by :func:`geocsp.objectives.distill.sharpen_targets`. The training rows of the
labelled subset are left out: they enter the base loss with their hard labels. No label of
any soft row is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocsp.data import GeoDataset
from geocsp.data.splits import usable_rows
from geocsp.errors import DatasetError
from geocsp.objectives.distill import DistillConfig, sharpen_targets
from geocsp.training.inference import resolve_probs_key

_CHUNK = 4096


@dataclass
class SoftRows:
    """Soft-target rows on the training device.

    Args:
        lonlat: (N, 2) float32 locations, degrees.
        index: (N, k) int64 class indices of each row's targets.
        targets: (N, k) float32 target probabilities (rows sum to 1).
        class_weight: (N, k) float32 weight of each target's class (``balance``), or None.
        sources: ``{split: (rows used, probability key)}``, for the run's log.
    """

    lonlat: Tensor
    index: Tensor
    targets: Tensor
    class_weight: Tensor | None
    sources: dict[str, tuple[int, str]]

    def __len__(self) -> int:
        return int(self.lonlat.shape[0])

    def draw(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """``n`` rows uniformly with replacement (``gen`` on the CPU): (lonlat, index, targets, class_weight)."""
        pos = torch.randint(0, len(self), (n,), generator=gen).to(self.lonlat.device)
        weight = self.class_weight.index_select(0, pos) if self.class_weight is not None else None
        return (self.lonlat.index_select(0, pos), self.index.index_select(0, pos),
                self.targets.index_select(0, pos), weight)


def topk_rows(probs: Any, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest probabilities of ``probs[rows]`` (dense array or scipy sparse).

    Args:
        probs: (M, Q) probabilities.
        rows: (N,) int64 row indices.
        k: classes per row (at most Q).

    Returns:
        ``(index (N, k) int64, values (N, k) float32)``, values in decreasing order.
    """
    k = min(int(k), int(probs.shape[1]))
    idx, val = np.empty((len(rows), k), np.int64), np.empty((len(rows), k), np.float32)
    for s in range(0, len(rows), _CHUNK):
        chunk = probs[rows[s : s + _CHUNK]]
        dense = torch.from_numpy(np.asarray(chunk.toarray() if hasattr(chunk, "toarray") else chunk, np.float32))
        v, i = torch.topk(dense, k, dim=1)
        idx[s : s + len(dense)], val[s : s + len(dense)] = i.numpy(), v.numpy()
    return idx, val


def soft_rows(ds: GeoDataset, cfg: DistillConfig, ratio: float, labelled_train_rows: np.ndarray,
              device: torch.device, class_counts: np.ndarray | None = None) -> SoftRows:
    """Every soft-target row of ``cfg.splits`` (see the module docstring).

    Args:
        ds: the dataset.
        cfg: the ``distill`` loss config.
        ratio: the run's label ratio λ (``probs_key: auto`` = its classifier).
        labelled_train_rows: rows of the ``train`` split in the labelled subset (left out).
        device: where the tensors go.
        class_counts: (Q,) labelled rows per class of the classifier's training subset;
            with ``mode: em`` each target is divided by its class's frequency (the
            classifier's P(y|I) over its training prior is P(I|y) up to a constant).

    Returns:
        The rows, sharpened and thresholded.

    Raises:
        DatasetError: when a configured split lacks the probability key, or no row is left.
    """
    lonlat, index, values, sources = [], [], [], {}
    for name in cfg.splits:
        if name not in ds:
            continue
        split = ds.split(name)
        key = resolve_probs_key(split, cfg.probs_key, ratio)
        keep = split.has_location.copy()
        if name == "train":
            keep[np.asarray(labelled_train_rows, np.int64)] = False
        rows = np.flatnonzero(keep)
        i, v = topk_rows(split.probs(key, dense=False), rows, cfg.topk)
        lonlat.append(split.lonlat[rows].astype(np.float32))
        index.append(i)
        values.append(v)
        sources[name] = (len(rows), key)
    if not lonlat or sum(len(x) for x in lonlat) == 0:
        raise DatasetError(f"loss distill: no rows with a location in splits {list(cfg.splits)} to distil from")
    all_index, all_values = np.concatenate(index), np.concatenate(values)
    targets, keep_t = sharpen_targets(torch.from_numpy(all_values), cfg.temperature, cfg.threshold)
    if cfg.mode == "em" and class_counts is not None:
        freq = torch.from_numpy(np.maximum(np.asarray(class_counts, np.float64), 1.0))
        targets = targets.double() / freq[torch.from_numpy(all_index)]
        targets = (targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-300)).float()
    if not bool(keep_t.any()):
        raise DatasetError(f"loss distill: no row reaches threshold {cfg.threshold}; lower loss.args.threshold")
    index_t, targets = torch.from_numpy(all_index)[keep_t], targets[keep_t]
    weight = class_weights(index_t, targets)[index_t] if cfg.balance else None
    return SoftRows(torch.from_numpy(np.concatenate(lonlat))[keep_t].to(device), index_t.to(device),
                    targets.to(device), weight.to(device) if weight is not None else None, sources)


def run_soft_rows(loss: Any, ds: GeoDataset, ratio: float, positions: np.ndarray,
                  device: torch.device) -> SoftRows | None:
    """The soft-target rows of a fine-tuning run's ``distill`` loss (None for other losses).

    ``positions`` index the usable labelled train rows (location and label), as
    ``TrainRows`` keeps them; they are mapped back to ``train`` rows to leave them out.
    """
    if not getattr(loss, "needs_soft_targets", False):
        return None
    train = ds.split("train")
    labelled = usable_rows(train.labels, train.has_location)[np.asarray(positions, np.int64)]
    assert train.labels is not None  # fine-tuning refuses a train split without labels
    counts = np.bincount(train.labels[labelled], minlength=len(ds.classes))
    return soft_rows(ds, loss.config, ratio, labelled, device, counts)


def class_weights(index: Tensor, targets: Tensor, num_classes: int | None = None) -> Tensor:
    """Per-class weights ∝ 1 / soft mass (floored at 1 row), mean 1 over the classes with mass.

    Args:
        index: (N, k) int64 class indices.
        targets: (N, k) target probabilities.
        num_classes: Q (default: the largest index + 1).

    Returns:
        (Q,) float32 weights; classes without any target mass get 0.
    """
    q = int(index.max()) + 1 if num_classes is None else num_classes
    mass = torch.zeros(q, dtype=torch.float64).index_add_(0, index.reshape(-1), targets.double().reshape(-1))
    present = mass > 0
    w = torch.where(present, 1.0 / mass.clamp_min(1.0), torch.zeros_like(mass))
    return (w / w[present].mean()).float()
