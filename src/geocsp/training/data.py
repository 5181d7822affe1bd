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
from geocsp.data.samplers import ClassBalancedSampler, ShuffleSampler
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
        lonlat, labels, src, rows = [], [], [], []
        self._feats: list[Tensor | None] = []
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
        self._dev_feats: Tensor | None = None  # (n, D) on a GPU when they fit (see preload)
        self._dev_pos: Tensor | None = None  # rows of _dev_feats of a subset (None = identity)
        if need_features and device.type == "cuda" and _fits_on_device(self, device):
            self.preload()

    def preload(self, chunk_rows: int = 65_536) -> None:
        """Copy the used feature rows to the device once, in large (pinned) chunks.

        Afterwards a batch's features are an on-device ``index_select``. Done automatically
        on CUDA when they take at most half the free device memory; on a CPU the features
        stay memory-mapped (never held twice in RAM).
        """
        out = torch.empty(len(self), self.feature_dim, dtype=self._stored_dtype(), device=self.device)
        pin = self.device.type == "cuda"
        for start in range(0, len(self), chunk_rows):
            idx = torch.arange(start, min(start + chunk_rows, len(self)))
            chunk = self._gather_host(idx, out.dtype)
            out[start : start + len(idx)].copy_(chunk.pin_memory() if pin else chunk, non_blocking=pin)
        self._dev_feats = out

    def _stored_dtype(self) -> torch.dtype:
        f = next(f for f in self._feats if f is not None)
        return torch.float16 if f.dtype == torch.float16 else torch.float32

    def __len__(self) -> int:
        return int(self.lonlat.shape[0])

    def subset(self, positions: np.ndarray) -> TrainRows:
        """A view restricted to ``positions`` (int64 indices into these rows)."""
        out = object.__new__(TrainRows)
        pos = torch.from_numpy(np.asarray(positions, dtype=np.int64))
        out.device, out._feats, out.feature_dim = self.device, self._feats, self.feature_dim
        out.lonlat = self.lonlat[pos.to(self.device)]
        out._dev_feats = self._dev_feats
        if self._dev_feats is not None:
            dpos = pos.to(self.device)
            out._dev_pos = dpos if self._dev_pos is None else self._dev_pos[dpos]
        else:
            out._dev_pos = None
        out.labels_np = self.labels_np[positions]
        out.labels = torch.from_numpy(out.labels_np).to(self.device)
        out._src, out._row = self._src[pos], self._row[pos]
        return out

    def features(self, idx: Tensor) -> Tensor:
        """(B, D) float32 features of rows ``idx`` ((B,) int64 CPU tensor), on the device."""
        if self._dev_feats is not None:
            pos = idx.to(self.device, non_blocking=True)
            if self._dev_pos is not None:
                pos = self._dev_pos.index_select(0, pos)
            return self._dev_feats.index_select(0, pos).float()
        return self._gather_host(idx, torch.float32).to(self.device, non_blocking=True)

    def _gather_host(self, idx: Tensor, dtype: torch.dtype) -> Tensor:
        """(B, D) host features of rows ``idx`` in ``dtype`` (one index_select per split)."""
        src, rows = self._src[idx], self._row[idx]
        if len(self._feats) == 1 and self._feats[0] is not None:
            return self._feats[0].index_select(0, rows).to(dtype)
        out = torch.empty(idx.shape[0], self.feature_dim, dtype=dtype)
        for s, f in enumerate(self._feats):
            m = src == s
            if f is not None and bool(m.any()):
                out[m] = f.index_select(0, rows[m]).to(dtype)
        return out


def _fits_on_device(rows: TrainRows, device: torch.device) -> bool:
    """Whether the used feature rows take at most half of the free CUDA memory."""
    if rows.feature_dim == 0:
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return len(rows) * rows.feature_dim * 4 <= free // 2


def epoch_sampler(cfg: DataConfig, labels: np.ndarray, seed: int, rank: int = 0,
                  world_size: int = 1) -> Any:
    """The configured epoch sampler over rows with these ``labels`` (-1 = unlabelled)."""
    if cfg.sampler == "balanced":
        return ClassBalancedSampler(labels, cfg.max_per_class, seed=seed, rank=rank, world_size=world_size)
    return ShuffleSampler(len(labels), seed=seed, rank=rank, world_size=world_size)
