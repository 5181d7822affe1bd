"""Folder of images -> geocsp dataset with image features (batched, resumable, never fatal).

Images are processed in fixed chunks of the sorted file list; each finished chunk is saved
(``.npy`` + ``.json``, atomically) in ``<out>.partial/`` beside the output, so a rerun of the
same command skips what is done. Unreadable images are listed in ``extract_report.json`` in
the output dataset and skipped. The partial folder is removed after the dataset is written.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from geocsp.data import SplitData, write_dataset
from geocsp.data.labels import label_strings
from geocsp.data.readers.exif import label_from_path, list_images
from geocsp.data.writer import check_dataset_target
from geocsp.errors import ConfigError, DatasetError, MissingFileError
from geocsp.features.backends import Backbone, load_backbone
from geocsp.features.preprocess import PreprocessConfig, load_and_preprocess
from geocsp.io import atomic_path, atomic_write_json

REPORT_NAME = "extract_report.json"
_STATE = "state.json"


@dataclass(frozen=True)
class ExtractConfig:
    """Extraction settings.

    Args:
        batch_size: images per forward pass.
        chunk_size: images per saved partial chunk (the unit of resumption).
        l2_normalize: divide each feature row by its L2 norm.
        split: name of the dataset split written.
        progress: show a tqdm bar with images/s.
    """

    batch_size: int = 32
    chunk_size: int = 512
    l2_normalize: bool = False
    split: str = "train"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "chunk_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"extract.{name}: expected >= 1, got {getattr(self, name)}")


def read_image_table(path: str | Path, id_col: str, columns: dict[str, str]) -> pd.DataFrame:
    """A CSV/Parquet keyed by image id: ``columns`` maps output name -> source column.

    The separator is sniffed (``,`` ``;`` tab). Ids are matched to images by relative
    path, then by file name without suffix (e.g. GeoLifeCLEF ``patchID``).

    Args:
        path: ``.csv`` (any separator) or ``.parquet`` file.
        id_col: column holding the image id.
        columns: output column name (``label``, ``lon``, ``lat``) -> column in the file.

    Returns:
        The renamed columns, indexed by the stripped id (first row of each id kept).

    Raises:
        MissingFileError: file not found.
        DatasetError: a named column is missing.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: table not found")
    df = (pd.read_parquet(p) if p.suffix == ".parquet"
          else pd.read_csv(p, sep=None, engine="python", dtype={id_col: str}))
    for col in (id_col, *columns.values()):
        if col not in df.columns:
            raise DatasetError(f"{p}: column '{col}' not found; columns: {', '.join(map(str, df.columns))}")
    out = df[list(columns.values())].rename(columns={v: k for k, v in columns.items()})
    if "label" in out:  # class names as text: 3 (not 3.0 from a float column with gaps); missing = None
        names, missing = label_strings(out["label"])
        out["label"] = names.astype(object).where(~missing, None)
    out.index = df[id_col].astype(str).str.strip()
    out = out[~out.index.duplicated()]
    out.attrs.update(source=str(p), id_col=id_col, columns=dict(columns))  # for check_ids_match's messages
    return out


def check_ids_match(table: pd.DataFrame | None, rel_paths: list[str], what: str) -> None:
    """Refuse a ``--labels`` / ``--locations`` table that would label / locate no image.

    Args:
        table: from :func:`read_image_table` (None: nothing to check).
        rel_paths: the images' paths relative to the images folder (POSIX).
        what: the table's role in the message (``labels``, ``locations``).

    Raises:
        DatasetError: no image's relative path or file stem is an id of the table (names the
            file, the id column and an example of each side), or a value column is empty in
            every row that names an image.
    """
    if table is None or not rel_paths:
        return
    ids = set(table.index)
    # the row each image takes, as _lookup picks it: its relative path, else its file stem
    named = [rel if rel in ids else Path(rel).stem for rel in rel_paths if rel in ids or Path(rel).stem in ids]
    src, col = table.attrs.get("source", f"the {what} table"), table.attrs.get("id_col", "id")
    if not named:
        example = next(iter(table.index), None)
        raise DatasetError(
            f"{src}: none of its {len(ids)} ids in column '{col}' matches an image "
            f"(e.g. id {example!r}; images are matched by relative path or file stem, e.g. "
            f"{rel_paths[0]!r} or {Path(rel_paths[0]).stem!r}); check --id-col")
    rows = table.loc[sorted(set(named))]
    for name, source_col in table.attrs.get("columns", {}).items():
        if rows[name].isna().all():
            raise DatasetError(f"{src}:{source_col}: empty in all {len(rows)} rows that name an image; "
                               f"expected the images' {name} values")


def _checked_images(root: Path, labels: pd.DataFrame | None,
                    locations: pd.DataFrame | None) -> tuple[list[Path], list[str]]:
    """The images under ``root`` and their relative POSIX paths, the tables checked against them.

    Raises:
        MissingFileError: no image under ``root``.
        DatasetError: see :func:`check_ids_match`.
    """
    files = list_images(root)
    if not files:
        raise MissingFileError(f"{root}: no image files found")
    rel_paths = [f.relative_to(root).as_posix() for f in files]
    check_ids_match(labels, rel_paths, "labels")
    check_ids_match(locations, rel_paths, "locations")
    return files, rel_paths


def _lookup(table: pd.DataFrame | None, rel: str, col: str) -> Any:
    if table is None:
        return None
    for key in (rel, Path(rel).stem):
        if key in table.index:
            v = table.at[key, col]
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    return None


def _run_chunk(files: list[Path], root: Path, backbone: Backbone, cfg: ExtractConfig,
               tick: Callable[[int], None]) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode + forward one chunk; returns (features of good rows, chunk metadata)."""
    feats: list[np.ndarray] = []
    meta: dict[str, Any] = {"images": [], "gps": [], "failed": {}}
    for start in range(0, len(files), cfg.batch_size):
        batch, names, gps = [], [], []
        for f in files[start:start + cfg.batch_size]:
            rel = f.relative_to(root).as_posix()
            try:
                x, ll = load_and_preprocess(f, backbone.preprocess)
            except DatasetError as e:
                meta["failed"][rel] = str(e)
                continue
            batch.append(x)
            names.append(rel)
            gps.append(list(ll) if ll else None)
        if batch:
            out = np.asarray(backbone.run(np.stack(batch)), np.float32)
            feats.append(out.reshape(len(batch), -1))
            meta["images"] += names
            meta["gps"] += gps
        tick(len(files[start:start + cfg.batch_size]))
    arr = np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)
    return arr, meta


def _partial_dir(out: Path, state: dict[str, Any]) -> Path:
    """The resume folder for ``out``; reset when it was made with other settings."""
    part = out.parent / f"{out.name}.partial"
    state = json.loads(json.dumps(state))  # tuples -> lists, as read back
    state_file = part / _STATE
    if part.is_dir() and (not state_file.is_file() or json.loads(state_file.read_text()) != state):
        shutil.rmtree(part)
    part.mkdir(parents=True, exist_ok=True)
    if not state_file.is_file():
        atomic_write_json(state_file, state)
    return part


def _chunks(files: list[Path], root: Path, backbone: Backbone, cfg: ExtractConfig, part: Path,
            on_batch: Callable[[int], None] | None) -> list[tuple[np.ndarray, dict[str, Any]]]:
    results, batches = [], 0
    bar = tqdm(total=len(files), unit="img", disable=not cfg.progress, desc="features")

    def tick(n: int) -> None:
        nonlocal batches
        bar.update(n)
        batches += 1
        if on_batch is not None:
            on_batch(batches)

    try:
        for k, start in enumerate(range(0, len(files), cfg.chunk_size)):
            chunk = files[start:start + cfg.chunk_size]
            npy, meta_file = part / f"chunk-{k:06d}.npy", part / f"chunk-{k:06d}.json"
            if meta_file.is_file() and npy.is_file():
                bar.update(len(chunk))
                results.append((np.load(npy), json.loads(meta_file.read_text())))
                continue
            arr, meta = _run_chunk(chunk, root, backbone, cfg, tick)
            with atomic_path(npy) as tmp, open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            atomic_write_json(meta_file, meta)  # written last: marks the chunk done
            results.append((arr, meta))
    finally:
        bar.close()
    return results


def _assemble(results: list[tuple[np.ndarray, dict[str, Any]]], locations: pd.DataFrame | None,
              labels: pd.DataFrame | None, cfg: ExtractConfig
              ) -> tuple[pd.DataFrame, np.ndarray, dict[str, str]]:
    rows, feats, failed = [], [], {}
    for arr, meta in results:
        failed.update(meta["failed"])
        if len(meta["images"]):
            feats.append(arr)
        for rel, gps in zip(meta["images"], meta["gps"], strict=True):
            lon, lat = _lookup(locations, rel, "lon"), _lookup(locations, rel, "lat")
            if lon is None or lat is None:
                lon, lat = gps if gps else (math.nan, math.nan)
            label = _lookup(labels, rel, "label") if labels is not None else label_from_path(rel)
            rows.append({"image": rel, "lon": float(lon), "lat": float(lat),
                         "label": None if label is None else str(label)})
    if not rows:
        raise DatasetError("no image could be decoded; see the failed list above")
    table = pd.DataFrame(rows)
    if table["label"].isna().all():
        table = table.drop(columns="label")
    x = np.concatenate(feats).astype(np.float32, copy=False)
    if cfg.l2_normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return table, x, failed


def extract_features(
    images_dir: str | Path,
    backbone: Backbone,
    out_dir: str | Path,
    cfg: ExtractConfig | None = None,
    *,
    locations: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Extract features of every image under ``images_dir`` into a geocsp dataset.

    Args:
        images_dir: folder of images (walked recursively; sub-folders = labels unless
            ``labels`` is given).
        backbone: from :func:`geocsp.features.backends.load_backbone`.
        out_dir: dataset directory to write (one split, ``cfg.split``).
        cfg: extraction settings.
        locations: table indexed by image id with ``lon``, ``lat`` (degrees); wins over EXIF.
        labels: table indexed by image id with ``label``.
        on_batch: called with the number of batches done (progress hooks, tests).

    Returns:
        The report written to ``<out_dir>/extract_report.json``: counts, failed images
        with their error, images without location, images without a row in ``labels``
        (``without_label``), images/s.

    Raises:
        MissingFileError: ``images_dir`` missing or without images.
        DatasetError: no image could be decoded, or ``labels`` / ``locations`` names none
            of the images.
    """
    cfg = cfg or ExtractConfig()
    root, out = Path(images_dir), Path(out_dir)
    check_dataset_target(out)  # an --overwrite of a folder that is not a dataset: refused before the work
    files, rel_paths = _checked_images(root, labels, locations)  # before any image is decoded
    prov = {"feature_extractor": {**backbone.provenance(), "l2_normalized": cfg.l2_normalize}}
    state = {"files": rel_paths, "chunk_size": cfg.chunk_size,
             **prov["feature_extractor"]}
    t0 = time.perf_counter()
    part = _partial_dir(out, state)
    results = _chunks(files, root, backbone, cfg, part, on_batch)
    table, x, failed = _assemble(results, locations, labels, cfg)
    classes = sorted(table["label"].dropna().unique().tolist()) if "label" in table else []
    write_dataset(out, {cfg.split: SplitData(table, x)}, classes, provenance=prov)
    seconds = time.perf_counter() - t0
    no_loc = table.loc[table["lon"].isna(), "image"].tolist()
    report = {"images": len(files), "extracted": len(table), "feature_dim": int(x.shape[1]),
              "failed": [{"image": k, "error": v} for k, v in sorted(failed.items())],
              "without_location": no_loc,
              "without_label": (table.loc[table["label"].isna(), "image"].tolist()
                                if labels is not None and "label" in table else []),
              "seconds": round(seconds, 3),
              "images_per_s": round(len(files) / max(seconds, 1e-9), 2), "config": asdict(cfg)}
    atomic_write_json(out / REPORT_NAME, report)
    shutil.rmtree(part, ignore_errors=True)
    return report


def extract_folder(
    images_dir: str | Path,
    out_dir: str | Path,
    backbone: str,
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    amp: bool = True,
    preprocess: PreprocessConfig | None = None,
    cfg: ExtractConfig | None = None,
    labels_table: str | Path | None = None,
    locations_table: str | Path | None = None,
    id_col: str = "image",
    label_col: str = "label",
    lon_col: str = "lon",
    lat_col: str = "lat",
) -> dict[str, Any]:
    """``geocsp features extract``: read the tables, load the backbone, extract.

    Args:
        images_dir: folder of images (sub-folders = labels unless ``labels_table``).
        out_dir: dataset directory to write.
        backbone: ``--backbone`` string, see :func:`~geocsp.features.backends.load_backbone`.
        weights: local weights file or folder.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        amp: float16 autocast on CUDA.
        preprocess: overrides the backbone's preprocessing.
        cfg: extraction settings.
        labels_table: CSV/Parquet with ``id_col`` and ``label_col``.
        locations_table: CSV/Parquet with ``id_col``, ``lon_col``, ``lat_col`` (degrees).
        id_col: column matching an image's relative path or file stem.
        label_col: label column of ``labels_table``.
        lon_col: longitude column of ``locations_table``.
        lat_col: latitude column of ``locations_table``.

    Returns:
        The extraction report (see :func:`extract_features`).

    Raises:
        MissingFileError: a table, the weights or the images are missing.
        DatasetError: a table column is missing, or no image could be decoded.
        ConfigError: bad backbone, weights or device.
        MissingDependencyError: the backbone's package is not installed.
        CheckpointError: the weights cannot be loaded.
    """
    check_dataset_target(Path(out_dir))  # before the backbone is loaded
    labels = read_image_table(labels_table, id_col, {"label": label_col}) if labels_table else None
    locations = (read_image_table(locations_table, id_col, {"lon": lon_col, "lat": lat_col})
                 if locations_table else None)
    if (labels is not None or locations is not None) and Path(images_dir).is_dir():
        _checked_images(Path(images_dir), labels, locations)  # before the backbone is loaded
    bb = load_backbone(backbone, weights, device=device, preprocess=preprocess, amp=amp)
    return extract_features(images_dir, bb, out_dir, cfg, locations=locations, labels=labels)
