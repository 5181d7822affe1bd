"""Inference from trained artifacts: P(y|x) in batches, top-k prediction and embeddings (spec §6).

* :func:`location_probs` -- (N, Q) P(y|x) of a prior in eval mode, NaN rows without a location;
* :func:`predict` -- top-k classes with scores for a dataset split or a lon/lat table
  (location embeddings e(x) are :func:`geocsp.training.embedding.embed`).

Fused scores are P(y|I) * P(y|x)^beta; rows without a location use P(y|I) alone. Given image
probabilities must be finite, in [0, 1] and sum to 1 per row (:func:`check_image_probs`); a
dataset scored by a run must have the run's classes, in its order (:func:`check_same_classes`);
an existing output is never replaced unless ``overwrite``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from geocsp.checkpoints import load_prior
from geocsp.data import GeoDataset, Split
from geocsp.data.format import (
    DEFAULT_PROBS,
    PROB_TOLERANCE,
    check_probs,
    missing_probs_key,
    ratio_probs_key,
)
from geocsp.data.tables import err, read_points, refuse_existing, write_table
from geocsp.errors import ConfigError, DatasetError, MissingFileError
from geocsp.prior import fuse
from geocsp.runtime import is_main_process, resolve_device
from geocsp.training.data import as_dataset
from geocsp.training.rundir import run_ratio


@torch.no_grad()
def batched_rows(fn: Callable[[Tensor], Tensor], lonlat: np.ndarray, has_location: np.ndarray,
                 width: int, batch_size: int, device: torch.device, out: np.ndarray | None = None) -> np.ndarray:
    """Apply ``fn`` ((B, 2) degrees on ``device`` -> (B, width)) to the rows with a location.

    Args:
        fn: the batched function.
        lonlat: (N, 2) degrees.
        has_location: (N,) bool.
        width: output columns.
        batch_size: rows per call of ``fn``.
        device: where ``fn`` runs.
        out: an (N, width) float32 C-contiguous array to write into (reused by streaming
            callers), or None for a new one.

    Returns:
        (N, width) float32 array (``out`` when given); rows without a location are NaN.

    Only the rows without a location are filled with NaN, and a chunk of consecutive rows is
    copied with one memcpy (no (B, width) temporary array): same values, fewer page faults
    (benchmarks/eval_roofline.py).
    """
    has = np.asarray(has_location, bool)
    if out is None:
        out = np.empty((len(lonlat), width), dtype=np.float32)
    out[~has] = np.nan
    rows = np.flatnonzero(has)
    pts = torch.as_tensor(lonlat[rows], dtype=torch.float32)
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        res = fn(pts[start : start + batch_size].to(device)).float().cpu()
        if idx[-1] - idx[0] == len(idx) - 1:
            torch.from_numpy(out[idx[0] : idx[-1] + 1]).copy_(res)
        else:
            out[idx] = res.numpy()
    return out


def location_probs(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, lonlat: np.ndarray,
                   has_location: np.ndarray, num_classes: int, batch_size: int,
                   device: torch.device, out: np.ndarray | None = None) -> np.ndarray:
    """(N, Q) P(y|x) = sigmoid(logits) in eval mode; NaN rows where the location is missing.

    ``out``: an (N, Q) float32 array to write into (see :func:`batched_rows`), or None.
    """
    was = module.training
    module.eval()
    try:
        # batched_rows runs without autograd: the sigmoid is taken in place on the fresh logits
        return batched_rows(lambda x: logits_fn(x).float().sigmoid_(), lonlat, has_location, num_classes,
                            batch_size, device, out)
    finally:
        module.train(was)


def resolve_probs_key(split: Split, key: str, ratio: float | None) -> str:
    """The stored image-probability set to score ``split`` with (docs/dataset.md, the key rule).

    ``auto`` is the classifier trained on the run's labels: ``default`` when λ = 1 (or
    ``ratio`` is None), ``ratio{λ:.3f}`` when λ < 1. Nothing falls back silently: a set that
    is not stored is an error.

    Args:
        split: the dataset split.
        key: ``auto`` or a stored key (``default``, ``ratio0.050``...).
        ratio: the run's label ratio λ in (0, 1], or None.

    Returns:
        A key the split stores.

    Raises:
        DatasetError: when the key (explicit, or the one ``auto`` stands for) is not stored;
            the message lists the stored keys and how to fix it.
    """
    stored = split.prob_keys
    if key != "auto":
        if key not in stored:
            raise DatasetError(f"{missing_probs_key(key, stored, split.name)}; pass one of the stored keys")
        return key
    want = ratio_probs_key(ratio)
    if want in stored:
        return want
    fix = ("store the full-label classifier's probabilities under 'default'" if want == DEFAULT_PROBS else
           f"store the few-shot classifier's probabilities under '{want}' (geocsp data add-probs), or score "
           f"with the full-label classifier: geocsp evaluate --probs-key default (probs_key='default' in Python)")
    raise DatasetError(f"split '{split.name}' has no probabilities '{want}' for label ratio "
                       f"{1.0 if ratio is None else ratio} (stored: {', '.join(stored) or 'none'}); {fix}")




def check_same_classes(run_classes: list[str], ds: GeoDataset) -> None:
    """Refuse a dataset whose classes are not the run's (same names in the same order).

    Args:
        run_classes: the prior's class names in index order.
        ds: the dataset to score.

    Raises:
        DatasetError: ``world2: dataset classes differ from the run's (run 40 classes,
            dataset 33; missing from the dataset: 'g01_s02', ...)``.
    """
    mine, theirs = list(run_classes), list(ds.classes)
    if mine == theirs:
        return
    listed = [("missing from the dataset", [c for c in mine if c not in set(theirs)]),
              ("extra in the dataset", [c for c in theirs if c not in set(mine)])]
    parts = [f"{what}: {_names(names)}" for what, names in listed if names]
    if not parts:  # the same names in another order
        i = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
        parts = [f"same names in another order; class {i} is {mine[i]!r} in the run, {theirs[i]!r} in the dataset"]
    raise DatasetError(f"{ds.root}: dataset classes differ from the run's (run {len(mine)} classes, "
                       f"dataset {len(theirs)}; {'; '.join(parts)})")


def _names(names: list[str], shown: int = 3) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(map(repr, names[:shown])) + more


def load_row_aligned(path: str | Path, rows: int, what: str) -> np.ndarray:
    """A 2-D ``.npy`` array row-aligned with an input of ``rows`` rows (no pickle).

    Args:
        path: the ``.npy`` file.
        rows: the number of rows it must have.
        what: what the array is, for messages.

    Returns:
        (rows, Q) float32 array.

    Raises:
        MissingFileError: when the file does not exist.
        DatasetError: when it is not a readable 2-D array of ``rows`` rows.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: {what} file not found")
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r")
    except ValueError as e:
        raise DatasetError(f"{p}: not a readable .npy array ({e})") from None
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise DatasetError(f"{p}: expected a ({rows}, Q) array row-aligned with the input, got {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise DatasetError(f"{p}: expected a numeric array, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float32)


def check_image_probs(img: np.ndarray, num_classes: int, source: str, *,
                      renormalize: bool = False) -> np.ndarray:
    """Refuse image probabilities that are not a distribution per row.

    Args:
        img: (N, Q) P(y|I).
        num_classes: Q, the run's number of classes.
        source: file named in messages.
        renormalize: divide rows that do not sum to 1 by their sum instead of refusing them
            (NaN / inf, negative and > 1 values are still refused).

    Returns:
        (N, Q) float32 probabilities (renormalised rows when asked).

    Raises:
        DatasetError: on another shape than (N, Q), ``FILE:row:class j: probability -0.2
            outside [0, 1]`` or ``FILE:row: probabilities sum to 0.7; expected 1 (within 0.001)``.
    """
    img = np.asarray(img, dtype=np.float32)
    check_probs(img, len(img), num_classes, source)
    sums = img.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0) > PROB_TOLERANCE
    if not off.any():
        return img
    i = int(np.flatnonzero(off)[0])
    if not renormalize:
        raise err(source, f"probabilities sum to {sums[i]:.6g}; expected 1 (within {PROB_TOLERANCE:g}); "
                  "pass --renormalize to rescale rows", row=i)
    zero = sums <= 0
    if zero.any():
        raise err(source, "probabilities are all 0; cannot renormalise the row", row=int(np.flatnonzero(zero)[0]))
    return (img / sums[:, None]).astype(np.float32)


def predict_inputs(source: GeoDataset | str | Path, split: str, classes: list[str],
                   probs_key: str, ratio: float | None, *, lon_col: str = "lon", lat_col: str = "lat",
                   crs: str | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """Rows to predict: from a dataset split or a CSV/Parquet file of lon/lat.

    Args:
        source: a dataset, its directory, or a CSV/Parquet file with ``lon``, ``lat``.
        split: the split of a dataset.
        classes: the run's classes; a dataset must have the same (:func:`check_same_classes`).
        probs_key: stored probability set of a dataset split (``auto``: see :func:`resolve_probs_key`).
        ratio: the run's label ratio, for ``auto``.
        lon_col: a table's longitude (x) column (:func:`geocsp.data.tables.read_points`).
        lat_col: a table's latitude (y) column.
        crs: a table's CRS (``EPSG:N``), reprojected to lon/lat degrees; None = degrees.

    Returns:
        (table, (N, 2) longitude, latitude in degrees with NaN rows, (N, Q) P(y|I) or None).

    Raises:
        DatasetError: on a dataset with other classes, or unreadable inputs.
        MissingFileError: when ``source`` does not exist.
    """
    p = None if isinstance(source, GeoDataset) else Path(source)
    if p is None or (p / "manifest.json").is_file():
        ds = as_dataset(source)
        check_same_classes(classes, ds)
        s = ds.split(split)
        img = None
        if s.prob_keys:
            img = s.probs(resolve_probs_key(s, probs_key, ratio))
        table = s.table[[c for c in ("lon", "lat", "label", "image") if c in s.table.columns]]
        return table.reset_index(drop=True), s.lonlat, img
    if not p.exists():
        raise MissingFileError(f"{p}: input not found (expected a dataset directory or a .csv/.parquet file)")
    table, lonlat = read_points(p, lon_col=lon_col, lat_col=lat_col, crs=crs)
    return table, lonlat, None


def predict(run_dir: str | Path, source: GeoDataset | str | Path, out: str | Path | None = None, *,
            top_k: int = 5, split: str = "val", image_probs: str | Path | np.ndarray | None = None,
            probs_key: str = "auto", beta: float = 1.0, batch_size: int = 4096,
            device: str = "auto", renormalize: bool = False, overwrite: bool = False,
            lon_col: str = "lon", lat_col: str = "lat", crs: str | None = None) -> pd.DataFrame:
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
        image_probs: (N, Q) P(y|I) as an array or ``.npy`` path, row-aligned with the input:
            finite, in [0, 1], each row summing to 1 (within 1e-3).
        probs_key: stored probability set of a dataset split (``auto`` as in evaluate).
        beta: exponent of P(y|x) in the fused score.
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...
        renormalize: rescale ``image_probs`` rows that do not sum to 1 instead of refusing them.
        overwrite: replace an existing ``out`` (else it is refused before any work).
        lon_col: longitude (x) column of a table ``source`` (default: ``lon``, or a geo file's geometry).
        lat_col: latitude (y) column of a table ``source``.
        crs: CRS of a table ``source`` (``EPSG:N``), reprojected to lon/lat degrees; None = degrees.

    Returns:
        The input's lon/lat (and label/image if present) plus ``class_1, score_1, ...``.

    Raises:
        CoordinateError: on invalid or swapped coordinates in the input file.
        DatasetError, MissingFileError: on unreadable inputs, invalid or misaligned
            probabilities, or a dataset whose classes are not the run's.
        ConfigError: on ``top_k < 1``, a ``beta`` that is not finite and >= 0, a bad output
            suffix or an existing ``out``.
    """
    if top_k < 1:
        raise ConfigError(f"top_k (--top-k) must be >= 1, got {top_k}")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
        raise ConfigError(f"beta (--beta) must be a finite number >= 0, got {beta!r}")
    if out is not None:
        files = [x for x in (source, image_probs) if isinstance(x, (str, Path))]
        refuse_existing(out, overwrite, inputs=files, file=True)
    dev = resolve_device(device)
    prior = load_prior(run_dir).to(dev)
    table, lonlat, img = predict_inputs(source, split, prior.classes, probs_key, run_ratio(Path(run_dir)),
                                        lon_col=lon_col, lat_col=lat_col, crs=crs)
    if isinstance(image_probs, (str, Path)):
        given = load_row_aligned(image_probs, len(lonlat), "image probabilities")
        img = check_image_probs(given, prior.num_classes, str(image_probs), renormalize=renormalize)
    elif image_probs is not None:
        img = check_image_probs(image_probs, prior.num_classes, "image_probs", renormalize=renormalize)
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
        s = lp if img is None else fuse(torch.as_tensor(np.array(img[sl])), lp, h, beta)  # a copy: img may be read-only
        valid = h if img is None else torch.ones_like(h)
        val, idx = torch.topk(torch.nan_to_num(s, nan=-math.inf), k, dim=1)
        rows = np.flatnonzero(valid.numpy()) + start
        scores[rows], classes[rows] = val[valid].numpy(), idx[valid].numpy()
    return scores, classes

