"""GeoWorld on disk: the cache directory, the world's identity, writing, reuse and the report."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.data.dataset import load_dataset
from geocsp.data.geoworld.config import (
    GENERATOR_VERSION,
    WORLD_PRESETS,
    GeoWorldConfig,
    get_world_config,
)
from geocsp.data.geoworld.generate import GeoWorld, generate_world
from geocsp.data.geoworld.truth import TRUTH_FILE, load_truth, true_location_probs
from geocsp.data.writer import write_dataset
from geocsp.errors import DatasetError
from geocsp.io import atomic_path, cache_dir

__all__ = ["cache_root", "default_world_dir", "make_world", "world_report", "write_world"]

_SCRATCH_BYTES = 1 << 29  # train features above 512 MiB are generated into a memmap
_REPORT_ROWS = 2048


def cache_root() -> Path:
    """``$GEOCSP_CACHE/geoworld`` if set, else ``~/.cache/geocsp/geoworld``.

    Returns:
        The directory holding cached worlds.
    """
    return cache_dir() / "geoworld"


def _identity(preset: str, seed: int, cfg: GeoWorldConfig) -> dict[str, Any]:
    """What a world on disk must record to be reused (JSON-normalised)."""
    ident = {"generator": "geoworld", "version": GENERATOR_VERSION, "preset": preset,
             "seed": int(seed), "config": cfg.identity()}
    return json.loads(json.dumps(ident))


def default_world_dir(preset: str, seed: int, config: GeoWorldConfig | None = None) -> Path:
    """Cache directory ``<cache_root>/<preset>-seed<seed>`` (plus a hash of any overrides).

    Args:
        preset: preset name (or alias).
        seed: world seed.
        config: the world's config; one different from the preset's adds its hash.

    Returns:
        The world's directory under :func:`cache_root`.
    """
    name = WORLD_PRESETS.canonical(preset)
    path = cache_root() / f"{name}-seed{int(seed)}"
    if config is not None and config != WORLD_PRESETS.get(name).obj:
        digest = hashlib.sha1(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:10]
        path = path.with_name(f"{path.name}-{digest}")
    return path


def _is_complete(path: Path, ident: dict[str, Any]) -> bool:
    """True when ``path`` holds the world of identity ``ident`` and its truth file."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("provenance", {}).get("geoworld") == ident and (path / TRUTH_FILE).is_file()


def write_world(world: GeoWorld, out: str | Path, identity: dict[str, Any]) -> Path:
    """Write ``world`` with ``write_dataset`` (atomic), then ``truth.npz`` beside the manifest.

    Args:
        world: the generated world.
        out: the dataset directory.
        identity: the world's JSON identity, stored as ``provenance.geoworld``.

    Returns:
        The dataset directory.
    """
    summary = {name: len(sd.table) for name, sd in world.splits.items()}
    provenance = {"geoworld": identity, "rows": summary,
                  "description": "synthetic GeoWorld (geocsp.data.geoworld); true ranges in truth.npz"}
    path = write_dataset(out, world.splits, world.classes, provenance)
    arrays: dict[str, Any] = world.truth.to_npz()
    with atomic_path(path / TRUTH_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def make_world(preset: str = "default", seed: int = 0, out: str | Path | None = None,
               overwrite: bool = False, *, device: str = "cpu", **overrides: Any) -> Path:
    """Generate (or reuse) a GeoWorld dataset directory.

    A directory that already holds the same world (same preset, seed, generator version and
    knob values, recorded in the manifest provenance) and its ``truth.npz`` is reused.

    Args:
        preset: ``small``, ``default`` or ``inat-scale``.
        seed: world seed.
        out: target directory; None uses :func:`default_world_dir` (the cache).
        overwrite: regenerate even when a complete world is there, and replace a different
            geocsp dataset at ``out``.
        device: torch device for the image classifier (not part of the world's identity).
        **overrides: knob values replacing the preset's (see :class:`GeoWorldConfig`).

    Returns:
        The dataset directory (readable with :func:`geocsp.data.dataset.load_dataset`).

    Raises:
        ConfigError: on an unknown preset or knob.
        DatasetError: when ``out`` holds something else and ``overwrite`` is False.
    """
    cfg = get_world_config(preset, **overrides)
    name = WORLD_PRESETS.canonical(preset)
    ident = _identity(name, seed, cfg)
    path = Path(out) if out is not None else default_world_dir(name, seed, cfg)
    if not overwrite and _is_complete(path, ident):
        return path
    if out is not None and not overwrite and path.exists() and any(path.iterdir()):
        raise DatasetError(f"{path}: exists and is not this GeoWorld (preset {name}, seed {seed}); "
                           "pass overwrite=True (--overwrite) or choose another output directory")
    big = cfg.train_rows * cfg.feature_dim * 4 > _SCRATCH_BYTES
    scratch = path.parent / f".{path.name}.scratch" if big else None
    try:
        world = generate_world(cfg, seed, scratch_dir=scratch, device=device)
        write_world(world, path, ident)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return path


def _top1_hits(scores: Any, labels: np.ndarray) -> np.ndarray:
    """(N,) bool, argmax of each row of a dense or sparse score matrix equals the label."""
    return np.asarray(scores.argmax(axis=1)).ravel() == labels


def world_report(path: str | Path) -> dict[str, Any]:
    """Measured headline numbers of a world's validation split.

    Args:
        path: the world's dataset directory.

    Raises:
        DatasetError: when the val split has no labels.

    Returns:
        ``{"classes", "val_rows", "val_missing_location", "chance_top1",
        "image_top1": {prob key: top-1}, "location_top1" (oracle ranges, rows with a location),
        "oracle_top1" (true location probs × ``default`` image probs; image alone without a
        location), "preset", "seed"}``; accuracies are fractions in [0, 1].
    """
    ds = load_dataset(path, verify_values=False)
    truth = load_truth(path)
    val = ds.split("val")
    y, has = val.labels, val.has_location
    if y is None:
        raise DatasetError(f"{path}: the val split has no labels; is this a GeoWorld directory?")
    ident = ds.manifest.get("provenance", {}).get("geoworld", {})
    image = {k: float(_top1_hits(val.probs(k, dense=False), y).mean()) for k in val.prob_keys}
    loc_hits, fused_hits = [], []
    img = val.probs("default", dense=False)
    for s in range(0, len(y), _REPORT_ROWS):
        sl = slice(s, s + _REPORT_ROWS)
        loc = true_location_probs(truth, val.lonlat[sl])
        p = img[sl].toarray() if hasattr(img, "toarray") else np.asarray(img[sl], np.float64)
        fused = np.where(has[sl, None], p * loc, p)
        loc_hits.append(_top1_hits(loc, y[sl])[has[sl]])
        fused_hits.append(_top1_hits(fused, y[sl]))
    return {
        "preset": ident.get("preset"), "seed": ident.get("seed"),
        "classes": len(ds.classes), "val_rows": len(y), "val_missing_location": int((~has).sum()),
        "chance_top1": 1.0 / len(ds.classes), "image_top1": image,
        "location_top1": float(np.concatenate(loc_hits).mean()),
        "oracle_top1": float(np.concatenate(fused_hits).mean()),
    }
