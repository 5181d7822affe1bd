"""Evaluation, prediction and embedding from run directories (spec §6).

* :func:`evaluate` -- image / location / fused metrics of a fine-tuned run on a split;
* :func:`predict` -- top-k classes with scores for a dataset split or a lon/lat table;
* :func:`embed` -- location embeddings e(x) from a run or an encoder directory.

P(y|x) is computed in batches on the device in eval mode (dropout off); fused scores are
P(y|I) * P(y|x)^beta, and rows without a location use P(y|I) alone.
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

from geocsp.config import from_dict, load_yaml
from geocsp.data import GeoDataset, Split
from geocsp.distributed import evaluate_scores_reduced, rank_and_world, shard_rows
from geocsp.errors import CheckpointError, ConfigError, DatasetError, MissingFileError
from geocsp.evaluation import evaluate_scores
from geocsp.io import atomic_path
from geocsp.prior import GeoPrior, fuse, tune_beta
from geocsp.training.config import EvaluateConfig, FinetuneConfig
from geocsp.training.data import as_dataset
from geocsp.training.loop import resolve_device
from geocsp.training.rundir import RunDir, dist_env

PRIOR_DIR = "prior"
ENCODER_DIR = "encoder"
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def load_prior(run_dir: str | Path) -> GeoPrior:
    """The fine-tuned :class:`GeoPrior` of a run (``RUN/prior``) or a prior directory.

    Raises:
        CheckpointError: when there is no prior there.
    """
    p = Path(run_dir)
    d = p / PRIOR_DIR if (p / PRIOR_DIR).is_dir() else p
    if not (d / "config.json").is_file():
        raise CheckpointError(f"{p}: no fine-tuned prior found (expected {p / PRIOR_DIR}); run geocsp finetune first")
    return GeoPrior.from_pretrained(d)


def load_encoder(path: str | Path) -> nn.Module:
    """A location encoder from a fine-tune run (its prior's), a pre-train run (``encoder/``),
    a prior directory or an encoder directory.

    Raises:
        CheckpointError: when none of these is found at ``path``.
    """
    from geocsp.nets import LocationEncoder

    p = Path(path)
    if (p / PRIOR_DIR / "config.json").is_file():
        return GeoPrior.from_pretrained(p / PRIOR_DIR).encoder
    if (p / ENCODER_DIR / "config.json").is_file() and not (p / "model.safetensors").is_file():
        return LocationEncoder.from_pretrained(p / ENCODER_DIR)
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p}: no location encoder found (expected a run dir with prior/ or encoder/, or an encoder dir)")
    try:
        return GeoPrior.from_pretrained(p).encoder
    except CheckpointError:
        return LocationEncoder.from_pretrained(p)


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


def evaluate_split(logits_fn: Callable[[Tensor], Tensor], module: nn.Module, split: Split,
                   num_classes: int, cfg: EvaluateConfig, ratio: float | None) -> dict[str, Any]:
    """Image / location / fused metrics of a prior on one split's labelled rows.

    Returns:
        ``{"image", "location", "fused"}`` metric dicts plus ``split``, ``probs_key``, ``beta``.

    A split without image-classifier probabilities is evaluated on location alone:
    ``image`` and ``fused`` are then None and ``probs_key`` is None.

    Raises:
        DatasetError: when the split has no labels, or a named probability set is missing.
    """
    if split.labels is None or not (split.labels >= 0).any():
        raise DatasetError(f"split '{split.name}': no labelled rows to evaluate")
    location_only = not split.prob_keys and cfg.probs_key == "auto"
    key = None if location_only else resolve_probs_key(split, cfg.probs_key, ratio)
    rows = np.flatnonzero(split.labels >= 0)
    sharded = cfg.beta != "tune" and rank_and_world()[1] > 1  # torchrun: each rank scores a shard
    if sharded:
        rows = shard_rows(rows)
    if location_only:  # uniform P(y|I): fused == location; reported as location only
        img = np.broadcast_to(np.float32(1.0 / num_classes), (len(rows), num_classes))
    else:
        img = split.probs(key, dense=False)[rows]  # sparse / memmap rows: densified per chunk later
    if img.shape[1] != num_classes:
        raise DatasetError(f"split '{split.name}': probabilities '{key}' have {img.shape[1]} classes, the prior {num_classes}")
    device = resolve_device(cfg.device)
    lonlat, has = split.lonlat[rows], split.has_location[rows]
    loc = location_probs(logits_fn, module, lonlat, has, num_classes, cfg.batch_size, device)
    labels = split.labels[rows]
    beta = cfg.beta
    if location_only:
        beta = 1.0
    elif beta == "tune":
        beta = tune_beta(img, loc, labels, has, batch_size=cfg.batch_size, device=device)
    scorer = evaluate_scores_reduced if sharded else evaluate_scores  # reduced: metrics summed over ranks
    metrics = scorer(img, loc, labels, has, beta=float(beta), batch_size=cfg.batch_size, device=device)
    if location_only:
        metrics = {**metrics, "image": None, "fused": None}
    return {**metrics, "split": split.name, "probs_key": key, "beta": float(beta)}


def run_ratio(run_dir: Path) -> float | None:
    """The label ratio λ of a fine-tune run (from its config.yaml), or None."""
    p = run_dir / "config.yaml"
    return float(load_yaml(p).get("ratio", 1.0)) if p.is_file() else None


def metrics_name(split: str) -> str:
    """``metrics.json`` for ``val``, ``metrics-<split>.json`` otherwise."""
    return "metrics.json" if split == "val" else f"metrics-{split}.json"


def evaluate(run_dir: str | Path, data: GeoDataset | str | Path, split: str = "val",
             probs_key: str = "auto", beta: float | str = 1.0, *, batch_size: int = 4096,
             device: str = "auto") -> dict[str, Any]:
    """Evaluate a fine-tuned run and write ``metrics.json`` (``metrics-<split>.json``).

    Args:
        run_dir: a ``geocsp finetune`` run directory.
        data: the dataset (or its directory).
        split: split to evaluate.
        probs_key: image-probability set, or ``auto`` (the run's few-shot ratio if stored).
        beta: exponent of P(y|x) in the fused score, or ``"tune"``.
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...

    Returns:
        ``{"image": m, "location": m, "fused": m, "split", "probs_key", "beta"}`` where each
        ``m`` has ``top1, top3, top5, top10, mrr, nll, ece, n``.

    Raises:
        CheckpointError: when the run has no prior.
        DatasetError: when the split is missing, unlabelled or lacks probabilities.
        ConfigError: on an invalid ``beta`` / ``batch_size``.
    """
    cfg = from_dict(EvaluateConfig, {"split": split, "probs_key": probs_key, "beta": beta,
                                     "batch_size": batch_size, "device": device}, where="evaluate")
    run = RunDir(run_dir, dist_env()[0])
    prior = load_prior(run.path).to(resolve_device(cfg.device))
    ds = as_dataset(data)
    out = evaluate_split(prior.logits, prior, ds.split(cfg.split), prior.num_classes, cfg, run_ratio(run.path))
    run.write_metrics(out, metrics_name(cfg.split))
    return out


# ---------------------------------------------------------------------------------------
# predict / embed
# ---------------------------------------------------------------------------------------


def read_points(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV/Parquet table with ``lon``, ``lat`` columns -> (table, (N, 2) degrees).

    Raises:
        MissingFileError, DatasetError, CoordinateError: as
            :func:`geocsp.data.readers.table.read_table` (coordinates validated with
            ``validate_lonlat``, source = the file name).
    """
    from geocsp.data.readers.table import read_table

    sd = read_table(path)
    return sd.table, sd.table[["lon", "lat"]].to_numpy(dtype=np.float64)


def _load_npy(path: str | Path, rows: int, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: {what} file not found")
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r")
    except ValueError as e:
        raise DatasetError(f"{p}: not a readable .npy array ({e})") from None
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise DatasetError(f"{p}: expected a ({rows}, Q) array row-aligned with the input, got {arr.shape}")
    return np.asarray(arr, dtype=np.float32)


def write_table(df: pd.DataFrame, out: str | Path) -> Path:
    """Write ``df`` to ``.csv`` or ``.parquet`` atomically (by suffix).

    Raises:
        ConfigError: on another suffix.
    """
    p = Path(out)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"{p}: output must end in .csv or .parquet")
    with atomic_path(p) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return p


def predict_inputs(source: GeoDataset | str | Path, split: str, image_probs: Any,
                   probs_key: str, ratio: float | None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """(table, (N, 2) lon/lat with NaN rows, (N, Q) image probs or None) from a dataset
    split or a CSV/Parquet file of lon/lat."""
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
        img = _load_npy(image_probs, len(lonlat), "image probabilities")
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
    if out is not None and dist_env()[0] == 0:
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
    from geocsp.coords import validate_lonlat

    if isinstance(lonlat, (str, Path)):
        _, pts = read_points(lonlat)
        pts = validate_lonlat(pts, source=str(lonlat))
    else:
        pts = validate_lonlat(lonlat, source="lonlat")
    dev = resolve_device(device)
    encoder = load_encoder(source).to(dev)
    encoder.eval()
    emb = batched_rows(encoder, pts, np.ones(len(pts), bool), int(encoder.dim), batch_size, dev)
    if out is not None and dist_env()[0] == 0:
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


def finetune_config_of(run_dir: str | Path) -> FinetuneConfig:
    """The resolved :class:`FinetuneConfig` saved in a run directory."""
    return from_dict(FinetuneConfig, load_yaml(Path(run_dir) / "config.yaml"), where="finetune")
