"""Inference from trained artifacts: P(y|x) in batches, top-k prediction and embeddings (spec §6).

* :func:`location_probs` -- (N, Q) P(y|x) of a prior in eval mode, NaN rows without a location;
* :func:`predict` -- top-k classes with scores for a dataset split or a lon/lat table;
* :func:`embed` -- location embeddings e(x) from a run or an encoder directory.

Fused scores are P(y|I) * P(y|x)^beta; rows without a location use P(y|I) alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from geocsp.checkpoints import load_encoder, load_prior
from geocsp.coords import validate_lonlat
from geocsp.data import GeoDataset, Split
from geocsp.data.tables import load_row_aligned, read_points, write_table
from geocsp.errors import ConfigError, DatasetError, MissingFileError
from geocsp.io import atomic_path
from geocsp.prior import fuse
from geocsp.runtime import is_main_process, resolve_device
from geocsp.training.data import as_dataset
from geocsp.training.rundir import run_ratio


@torch.no_grad()
def batched_rows(fn: Callable[[Tensor], Tensor], lonlat: np.ndarray, has_location: np.ndarray,
                 width: int, batch_size: int, device: torch.device) -> np.ndarray:
    """Apply ``fn`` ((B, 2) degrees on ``device`` -> (B, width)) to the rows with a location.

    Returns:
        (N, width) float32 array; rows without a location are NaN.
    """
    out = np.full((len(lonlat), width), np.nan, dtype=np.float32)
    rows = np.flatnonzero(has_location)
    pts = torch.as_tensor(lonlat[rows], dtype=torch.float32)
    for start in range(0, len(rows), batch_size):
        chunk = pts[start : start + batch_size].to(device)
        out[rows[start : start + batch_size]] = fn(chunk).float().cpu().numpy()
    return out


def location_probs(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, lonlat: np.ndarray,
                   has_location: np.ndarray, num_classes: int, batch_size: int,
                   device: torch.device) -> np.ndarray:
    """(N, Q) P(y|x) = sigmoid(logits) in eval mode; NaN rows where the location is missing."""
    was = module.training
    module.eval()
    try:
        return batched_rows(lambda x: torch.sigmoid(logits_fn(x)), lonlat, has_location, num_classes,
                            batch_size, device)
    finally:
        module.train(was)


def resolve_probs_key(split: Split, key: str, ratio: float | None) -> str:
    """``auto`` -> ``ratio{λ:.3f}`` if the split stores it, else ``default``."""
    if key != "auto":
        return key
    candidate = f"ratio{ratio:.3f}" if ratio is not None else None
    return candidate if candidate in split.prob_keys else "default"


def predict_inputs(source: GeoDataset | str | Path, split: str, image_probs: Any,
                   probs_key: str, ratio: float | None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """Rows to predict: from a dataset split or a CSV/Parquet file of lon/lat.

    Returns:
        (table, (N, 2) longitude, latitude in degrees with NaN rows, (N, Q) P(y|I) or None).
    """
    p = None if isinstance(source, GeoDataset) else Path(source)
    if p is None or (p / "manifest.json").is_file():
        s = as_dataset(source).split(split)
        img = image_probs
        if img is None and s.prob_keys:
            img = s.probs(resolve_probs_key(s, probs_key, ratio))
        table = s.table[[c for c in ("lon", "lat", "label", "image") if c in s.table.columns]]
        return table.reset_index(drop=True), s.lonlat, img
    if not p.exists():
        raise MissingFileError(f"{p}: input not found (expected a dataset directory or a .csv/.parquet file)")
    table, lonlat = read_points(p)
    return table, lonlat, image_probs


def predict(run_dir: str | Path, source: GeoDataset | str | Path, out: str | Path | None = None, *,
            top_k: int = 5, split: str = "val", image_probs: str | Path | np.ndarray | None = None,
            probs_key: str = "auto", beta: float = 1.0, batch_size: int = 4096,
            device: str = "auto") -> pd.DataFrame:
    """Top-k classes with scores for each input row.

    Scores are the fused P(y|I) * P(y|x)^beta when image probabilities are available (a
    dataset split's stored set, or ``image_probs``), else P(y|x). Rows without a location
    use P(y|I) alone; rows with neither get empty classes and NaN scores.

    Args:
        run_dir: a fine-tune run (or prior directory).
        source: a dataset / dataset directory (``split`` is used) or a CSV/Parquet file with
            ``lon``, ``lat`` columns in degrees.
        out: optional ``.csv`` / ``.parquet`` to write.
        top_k: classes per row.
        split: dataset split when ``source`` is a dataset.
        image_probs: (N, Q) P(y|I) as an array or ``.npy`` path, row-aligned with the input.
        probs_key: stored probability set of a dataset split (``auto`` as in evaluate).
        beta: exponent of P(y|x) in the fused score.
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...

    Returns:
        The input's lon/lat (and label/image if present) plus ``class_1, score_1, ...``.

    Raises:
        CoordinateError: on invalid or swapped coordinates in the input file.
        DatasetError, MissingFileError: on unreadable inputs or misaligned probabilities.
        ConfigError: on ``top_k < 1`` or a bad output suffix.
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    dev = resolve_device(device)
    prior = load_prior(run_dir).to(dev)
    table, lonlat, img = predict_inputs(source, split, None, probs_key, run_ratio(Path(run_dir)))
    if isinstance(image_probs, (str, Path)):
        img = load_row_aligned(image_probs, len(lonlat), "image probabilities")
    elif image_probs is not None:
        img = np.asarray(image_probs, dtype=np.float32)
    has = ~np.isnan(lonlat).any(axis=1)
    q = prior.num_classes
    loc = location_probs(prior.logits, prior, lonlat, has, q, batch_size, dev)
    scores, classes = _top_k(loc, img, has, min(top_k, q), beta, batch_size)
    names = np.asarray([*prior.classes, ""], dtype=object)
    df = table.copy()
    for k in range(scores.shape[1]):
        df[f"class_{k + 1}"] = names[classes[:, k]]
        df[f"score_{k + 1}"] = scores[:, k]
    if out is not None and is_main_process():
        write_table(df, out)
    return df


def _top_k(loc: np.ndarray, img: np.ndarray | None, has: np.ndarray, k: int, beta: float,
           batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) scores and class indices (index Q = none) of the fused or location scores."""
    n, q = loc.shape
    if img is not None and img.shape != loc.shape:
        raise DatasetError(f"image probabilities: expected shape {loc.shape}, got {img.shape}")
    scores = np.full((n, k), np.nan, dtype=np.float32)
    classes = np.full((n, k), q, dtype=np.int64)
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        h = torch.as_tensor(has[sl])
        lp = torch.as_tensor(loc[sl])
        s = lp if img is None else fuse(torch.as_tensor(img[sl]), lp, h, beta)
        valid = h if img is None else torch.ones_like(h)
        val, idx = torch.topk(torch.nan_to_num(s, nan=-math.inf), k, dim=1)
        rows = np.flatnonzero(valid.numpy()) + start
        scores[rows], classes[rows] = val[valid].numpy(), idx[valid].numpy()
    return scores, classes


def embed(source: str | Path, lonlat: np.ndarray | str | Path, out: str | Path | None = None, *,
          batch_size: int = 4096, device: str = "auto") -> np.ndarray:
    """Location embeddings e(x) in eval mode.

    Args:
        source: a fine-tune run, a pre-train run, a prior directory or an encoder directory.
        lonlat: (N, 2) longitude, latitude in degrees, or a CSV/Parquet file with ``lon``,
            ``lat`` columns.
        out: optional ``.npy`` (the (N, d) matrix) or ``.csv`` / ``.parquet`` (lon, lat,
            e0 ... e{d-1}).
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...

    Returns:
        (N, d) float32 embeddings.

    Raises:
        CoordinateError: on invalid or swapped coordinates.
        CheckpointError: when no encoder is found at ``source``.
        ConfigError: on a bad output suffix.
    """
    if isinstance(lonlat, (str, Path)):
        _, pts = read_points(lonlat)
        pts = validate_lonlat(pts, source=str(lonlat))
    else:
        pts = validate_lonlat(lonlat, source="lonlat")
    dev = resolve_device(device)
    encoder = load_encoder(source).to(dev)
    encoder.eval()
    emb = batched_rows(encoder, pts, np.ones(len(pts), bool), int(encoder.dim), batch_size, dev)
    if out is not None and is_main_process():
        _write_embeddings(emb, pts, out)
    return emb


def _write_embeddings(emb: np.ndarray, pts: np.ndarray, out: str | Path) -> None:
    p = Path(out)
    if p.suffix.lower() == ".npy":
        with atomic_path(p) as tmp, open(tmp, "wb") as f:
            np.save(f, emb, allow_pickle=False)
        return
    df = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
    df.insert(0, "lat", pts[:, 1])
    df.insert(0, "lon", pts[:, 0])
    write_table(df, p)


