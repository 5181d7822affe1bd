"""Reader for the paper's data release layout (iNat2018 and fMoW; spec §7).

Per split (``train``, ``val``; a split is read when its annotation file exists)::

    iNat2018                                          fMoW
    {split}2018_locations.json                        {split}_location.json
    {split}2018.json  (COCO: images, annotations)     {split}.json
    categories2018.json  [{id, name}]                 category.json  {name: id}
    features_inception_pretrain/inat2018_{split}_pretrain_net_feats.npy   (fmow_{split}_...)
    features_inception/inat2018_{split}_preds_sparse.npz                  feature_moco/fmow_{split}_preds.npy
    fewshot/inat2018_{split}_preds_sparse_ratio0.050.npz                  fewshot/fmow_{split}_preds_ratio0.050.npy

Rows keep the images order (the order of the feature and prediction arrays). Unlike the
reference loader (``remove_invalid``), rows whose ``lon``/``lat`` is null are *kept* with a
missing location (evaluation then uses the image alone), and rows without ``user_id`` are kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geocsp.data.dataset import SplitData, write_dataset
from geocsp.data.format import load_npy, load_probs, ratio_probs_key
from geocsp.data.tables import err, numeric_cells, refuse_existing, show
from geocsp.errors import ConfigError, MissingFileError

SPLITS = ("train", "val")
_RATIO_RE = re.compile(r"_ratio([0-9]*\.?[0-9]+)\.np[yz]$")


@dataclass(frozen=True)
class Layout:
    """File names of one dataset of the release; ``{s}`` is the split name."""

    prefix: str
    locations: str
    annotations: str
    categories: str
    default_probs: tuple[str, ...]


LAYOUTS = {
    "inat2018": Layout(
        "inat2018",
        "{s}2018_locations.json",
        "{s}2018.json",
        "categories2018.json",
        ("features_inception/inat2018_{s}_preds_sparse.npz", "features_inception/inat2018_{s}_preds.npy"),
    ),
    "fmow": Layout(
        "fmow",
        "{s}_location.json",
        "{s}.json",
        "category.json",
        ("feature_moco/fmow_{s}_preds.npy", "feature_moco/fmow_{s}_preds_sparse.npz"),
    ),
}


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise err(path, f"invalid JSON ({e.msg})", row=e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise err(path, f"unreadable ({type(e).__name__})") from None


def read_categories(path: Path) -> list[str]:
    """Class names in id order from ``[{id, name}]`` or ``{name: id}``; ids must be 0..Q-1.

    Raises:
        DatasetError: on another structure or non-contiguous ids.
    """
    data = _read_json(path)
    if isinstance(data, dict):
        pairs = [(v, str(k)) for k, v in data.items()]
    elif isinstance(data, list) and all(isinstance(d, dict) and {"id", "name"} <= d.keys() for d in data):
        pairs = [(d["id"], str(d["name"])) for d in data]
    else:
        raise err(path, "expected [{\"id\": ..., \"name\": ...}] or {name: id}")
    ids = sorted(i for i, _ in pairs if isinstance(i, int))
    if ids != list(range(len(pairs))):
        raise err(path, f"category ids must be the integers 0..{len(pairs) - 1} (probability columns follow them)")
    names = [n for _, n in sorted(pairs)]
    dup = pd.Series(names).duplicated(keep=False).to_numpy()
    return [f"{n} ({i})" if d else n for i, (n, d) in enumerate(zip(names, dup, strict=True))]


def _frame(records: Any, path: Path, key: str, needed: list[str]) -> pd.DataFrame:
    if not isinstance(records, list):
        raise err(path, f"expected a list under {key!r}", column=key)
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=needed)
    for col in needed:
        if col not in df.columns:
            raise err(path, f"{key} entries lack {col!r}; found {', '.join(map(str, df.columns))}", column=col)
    return df


def _split_table(src: Path, layout: Layout, split: str, classes: list[str]) -> pd.DataFrame:
    ann_path = src / layout.annotations.format(s=split)
    ann = _read_json(ann_path)
    if not isinstance(ann, dict):
        raise err(ann_path, "expected a COCO-style object with 'images' and 'annotations'")
    images = _frame(ann.get("images"), ann_path, "images", ["id", "file_name"])
    if len(images) == 0:
        raise err(ann_path, "no images; a split needs at least one row", column="images")
    annos = _frame(ann.get("annotations", []), ann_path, "annotations", ["image_id", "category_id"])
    dup = annos["image_id"].duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise err(ann_path, f"image {show(annos['image_id'].iloc[i])} has more than one annotation", row=i, column="image_id")
    cat = pd.to_numeric(annos["category_id"], errors="coerce")
    bad = (cat.isna() | (cat < 0) | (cat >= len(classes)) | (cat % 1 != 0)).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise err(ann_path, f"category {show(annos['category_id'].iloc[i])} is not a known category id", row=i, column="category_id")
    names = pd.Series(np.asarray(classes, dtype=object)[cat.to_numpy(dtype=np.int64)], index=annos["image_id"].to_numpy())
    table = pd.DataFrame({"image": images["file_name"].astype("string"), "image_id": images["id"]})
    table["label"] = pd.Series(images["id"].map(names).to_numpy(), dtype="string")
    return table.join(_locations(src / layout.locations.format(s=split), images["id"]))


def _locations(path: Path, image_ids: pd.Series) -> pd.DataFrame:
    """lon, lat (NaN when either is null), user_id, date_c aligned to ``image_ids``."""
    locs = _frame(_read_json(path), path, "locations", ["lon", "lat"])
    for col in ("lon", "lat"):  # only null / empty cells are missing; "north" is an error
        locs[col] = numeric_cells(locs[col], path, col, "degrees or null")
    if "id" in locs.columns:
        if locs["id"].duplicated().any():
            raise err(path, "duplicate location ids", column="id")
        locs = locs.set_index("id").reindex(image_ids.to_numpy()).reset_index(drop=True)
    elif len(locs) != len(image_ids):
        raise err(path, f"has {len(locs)} entries but there are {len(image_ids)} images (and no 'id' to match them)")
    lon, lat = locs["lon"], locs["lat"]
    missing = (lon.isna() | lat.isna()).to_numpy()
    out = pd.DataFrame({"lon": lon.where(~missing), "lat": lat.where(~missing)})
    for extra in ("user_id", "date_c"):
        if extra in locs.columns:
            out[extra] = locs[extra].to_numpy()
    return out


def _arrays(src: Path, layout: Layout, split: str, n: int) -> tuple[np.ndarray | None, dict[str, Any]]:
    feats = None
    fpath = src / "features_inception_pretrain" / f"{layout.prefix}_{split}_pretrain_net_feats.npy"
    if fpath.is_file():
        feats = load_npy(fpath)
        if feats.ndim != 2 or feats.shape[0] != n:
            raise err(fpath, f"features have shape {feats.shape}; expected ({n}, D) to match the images")
    probs: dict[str, Any] = {}
    for pattern in layout.default_probs:
        p = src / pattern.format(s=split)
        if p.is_file():
            probs["default"] = load_probs(p)
            break
    for p in sorted((src / "fewshot").glob(f"{layout.prefix}_{split}_preds*_ratio*.np[yz]")):
        m = _RATIO_RE.search(p.name)
        if m:
            probs[ratio_probs_key(float(m.group(1)))] = load_probs(p)
    return feats, probs


def read_inat(src_dir: str | Path, dataset: str = "inat2018") -> tuple[dict[str, SplitData], list[str], dict[str, Any]]:
    """Read the release layout into memory (features and dense predictions stay memory-mapped).

    Args:
        src_dir: the data directory (e.g. ``geo_prior_data_csp/data/inat_2018``).
        dataset: ``"inat2018"`` or ``"fmow"``.

    Returns:
        (splits, classes, provenance), ready for :func:`~geocsp.data.dataset.write_dataset`.

    Raises:
        ConfigError: on an unknown dataset name.
        MissingFileError: when the categories or a split's locations are missing.
        DatasetError: on malformed files (message names file, row and column).
    """
    if dataset not in LAYOUTS:
        raise ConfigError(f"unknown release dataset '{dataset}'; known: {', '.join(LAYOUTS)}")
    src, layout = Path(src_dir), LAYOUTS[dataset]
    if not src.is_dir():
        raise MissingFileError(f"{src}: source directory not found")
    classes = read_categories(src / layout.categories)
    splits = {}
    for split in SPLITS:
        if not (src / layout.annotations.format(s=split)).is_file():
            continue
        table = _split_table(src, layout, split, classes)
        feats, probs = _arrays(src, layout, split, len(table))
        splits[split] = SplitData(table=table, features=feats, probs=probs)
    if not splits:
        raise MissingFileError(
            f"{src}: no {layout.annotations.format(s='train')} or {layout.annotations.format(s='val')} found; "
            f"is this the {dataset} data directory?"
        )
    provenance = {"reader": f"geocsp.data.readers.inat ({dataset})", "source": str(src.resolve())}
    return splits, classes, provenance


def convert_inat(src_dir: str | Path, out_dir: str | Path, dataset: str = "inat2018", *,
                 overwrite: bool = False) -> Path:
    """Convert the release layout in ``src_dir`` into a geocsp dataset at ``out_dir``.

    Args:
        src_dir: the data directory.
        out_dir: the dataset directory to write; an existing one is refused unless ``overwrite``.
        dataset: ``"inat2018"`` or ``"fmow"``.
        overwrite: replace an existing dataset at ``out_dir``.

    Returns:
        The dataset directory.

    Raises:
        ConfigError: on an existing ``out_dir`` without ``overwrite``.
        MissingFileError, DatasetError: as :func:`read_inat` and
            :func:`~geocsp.data.dataset.write_dataset`; nothing is written on error.
    """
    refuse_existing(out_dir, overwrite)
    splits, classes, provenance = read_inat(src_dir, dataset)
    return write_dataset(out_dir, splits, classes, provenance)
