"""Training rows as tensors: locations on the device, features memory-mapped on the host.

No per-sample Python: a batch is a (B,) int64 tensor of row positions, and features are
gathered with ``index_select`` on a torch view of each split's memory map.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geocsp.data import GeoDataset, Split, load_dataset
from geocsp.data.epoch_samplers import ClassBalancedSampler, ShuffleSampler
from geocsp.errors import DatasetError
from geocsp.training.config import DataConfig


def as_dataset(data: GeoDataset | str | Path) -> GeoDataset:
    """A loaded dataset (``data`` may be a dataset directory)."""
    return data if isinstance(data, GeoDataset) else load_dataset(data)


def _feature_view(features: np.ndarray) -> Tensor:
    """A zero-copy torch view of a (possibly read-only) memory map."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "non-writable array": we only read
        return torch.from_numpy(np.asarray(features))


class TrainRows:
    """Usable rows of one or more splits, gathered per batch.

    A row is usable when it has a location (and features / a label when asked for).

    Args:
        splits: the splits to draw from, concatenated in order.
        device: where locations and labels live.
        need_features: keep only rows of splits with features (every row of such a split).
        need_labels: keep only rows with a label >= 0.

    Raises:
        DatasetError: when no row is usable (the message says why).
    """

    def __init__(self, splits: list[Split], device: torch.device, *, need_features: bool,
                 need_labels: bool) -> None:
        lonlat, labels, src, rows, self._feats = [], [], [], [], []
        for s in splits:
            if need_features and s.features is None:
                continue
            keep = s.has_location.copy()
            lab = s.labels if s.labels is not None else np.full(len(s), -1, np.int64)
            if need_labels:
                keep &= lab >= 0
            idx = np.flatnonzero(keep)
            lonlat.append(s.lonlat[idx])
            labels.append(lab[idx])
            src.append(np.full(len(idx), len(self._feats), np.int64))
            rows.append(idx)
            self._feats.append(_feature_view(s.features) if s.features is not None else None)
        n = sum(len(r) for r in rows)
        if n == 0:
            what = " with features" if need_features else ""
            what += " and labels" if need_labels else ""
            names = ", ".join(s.name for s in splits)
            raise DatasetError(f"splits {names}: no rows with a location{what} to train on")
        self.device = device
        self.lonlat = torch.from_numpy(np.concatenate(lonlat)).float().to(device)
        self.labels_np = np.concatenate(labels).astype(np.int64)
        self.labels = torch.from_numpy(self.labels_np).to(device)
        self._src = torch.from_numpy(np.concatenate(src))
        self._row = torch.from_numpy(np.concatenate(rows))
        self.feature_dim = next((int(f.shape[1]) for f in self._feats if f is not None), 0)

    def __len__(self) -> int:
        return int(self.lonlat.shape[0])

    def subset(self, positions: np.ndarray) -> TrainRows:
        """A view restricted to ``positions`` (int64 indices into these rows)."""
        out = object.__new__(TrainRows)
        pos = torch.from_numpy(np.asarray(positions, dtype=np.int64))
        out.device, out._feats, out.feature_dim = self.device, self._feats, self.feature_dim
        out.lonlat = self.lonlat[pos.to(self.device)]
        out.labels_np = self.labels_np[positions]
        out.labels = torch.from_numpy(out.labels_np).to(self.device)
        out._src, out._row = self._src[pos], self._row[pos]
        return out

    def features(self, idx: Tensor) -> Tensor:
        """(B, D) float32 features of rows ``idx`` ((B,) int64 CPU tensor), on the device."""
        src, rows = self._src[idx], self._row[idx]
        if len(self._feats) == 1:
            out = self._feats[0].index_select(0, rows).float()
        else:
            out = torch.empty(idx.shape[0], self.feature_dim, dtype=torch.float32)
            for s, f in enumerate(self._feats):
                m = src == s
                if f is not None and bool(m.any()):
                    out[m] = f.index_select(0, rows[m]).float()
        return out.to(self.device, non_blocking=True)


def epoch_sampler(cfg: DataConfig, labels: np.ndarray, seed: int, rank: int = 0,
                  world_size: int = 1) -> Any:
    """The configured epoch sampler over rows with these ``labels`` (-1 = unlabelled)."""
    if cfg.sampler == "balanced":
        return ClassBalancedSampler(labels, cfg.max_per_class, seed=seed, rank=rank, world_size=world_size)
    return ShuffleSampler(len(labels), seed=seed, rank=rank, world_size=world_size)
