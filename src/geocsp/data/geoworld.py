"""GeoWorld: the built-in synthetic world (docs/geoworld.md; issue 3).

A seeded generator of a geocsp dataset whose structure makes the CSP problem real:

* **Taxonomy.** Q classes in G genera. An image feature is
  ``genus prototype + class offset + noise + habitat(location)``: classes of one genus look
  alike, and a photo also shows the habitat around the organism, a smooth function of
  where it was taken.
* **Ranges.** Each class lives on land in a mixture of 1–3 von Mises–Fisher (vMF)
  components; the components of a genus scatter around the genus' home region, so sister
  species are neighbours that overlap only partly. Range sizes are log-uniform from endemic
  (~200 km) to widespread (~3000 km).
* **Abundance.** Train counts follow a capped Zipf law (iNat2018 caps classes at 1000).
* **Splits.** ``train`` (labelled), ``unlabeled`` (image–location pairs, no labels),
  ``val`` (a fixed number per class, ~1 % rows without location) with image-classifier
  probabilities from a linear head really trained on each stratified λ-subset of train.

Everything is a pure function of (:class:`GeoWorldConfig`, seed); the world is written with
:func:`geocsp.data.dataset.write_dataset` plus ``truth.npz`` holding the true ranges.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geocsp._registry import Registry
from geocsp.config import from_dict, to_dict
from geocsp.coords import EARTH_RADIUS_KM, xyz_to_lonlat
from geocsp.data.geoworld_classifier import ClassifierSettings, classifier_probs
from geocsp.data.geoworld_ranges import (
    TRUTH_FILE,
    draw_range_points,
    draw_truth,
    load_truth,
    true_location_probs,
    true_range_density,
)
from geocsp.errors import ConfigError, DatasetError
from geocsp.io import atomic_path, cache_dir

__all__ = [
    "WORLD_PRESETS",
    "GeoWorld",
    "GeoWorldConfig",
    "generate_world",
    "get_world_config",
    "load_truth",
    "make_world",
    "true_location_probs",
    "true_range_density",
    "world_report",
]

GENERATOR_VERSION = 2
"""Bumped whenever the same (config, seed) would produce different data."""
_CHUNK_ROWS = 32768
_SCRATCH_BYTES = 1 << 29  # train features above 512 MiB are generated into a memmap


@dataclass(frozen=True)
class GeoWorldConfig:
    """Every knob of GeoWorld; the defaults are the ``default`` preset.

    Args:
        num_classes: Q, species.
        num_genera: G, genera (each class belongs to one; every genus has ≥ 1 class).
        feature_dim: D, image-feature dimension (the CNN embedding size).
        train_rows: labelled training rows (exact).
        unlabeled_rows: unlabeled image–location pairs for pre-training (0 = no split).
        val_per_class: validation rows per class (iNat2018 val has 3 per class).
        val_missing_frac: fraction of val rows whose location is withheld (images
            without GPS); their features still carry the habitat of the true location.
        zipf_exponent: s in n_c ∝ rank^-s (before clipping).
        min_train_per_class: floor on train rows per class (≥ 2).
        max_train_per_class: cap on train rows per class (iNat2018 caps at 1000).
        max_components: components per range, drawn uniformly in 1..max_components.
        range_km_min: smallest component scale, km (endemic).
        range_km_max: largest component scale, km (widespread); the vMF concentration is
            κ = (R_earth / range_km)², so range_km is the per-axis angular standard
            deviation; draws are log-uniform between the bounds.
        genus_realm_km: scale (km) of a genus' home region; component centres of its
            classes are drawn from a vMF of this scale around it (niche conservatism).
        genus_norm: RMS length of a genus prototype (how different genera look).
        class_norm: RMS length of a class offset within its genus (how different sister
            species look; small = hard to tell apart).
        noise_std: per-dimension std of the per-photo noise (pose, light, background).
        habitat_norm: RMS length of the habitat component (what the photo shows of the
            surroundings); 0 switches it off.
        habitat_length_km: correlation length of the habitat field, km.
        habitat_rank: number of random Fourier features of the habitat field (its rank in
            feature space).
        ratios: label ratios λ with a few-shot classifier (keys ``ratio{λ:.3f}``).
        clf_full_batch_rows, clf_lbfgs_iters, clf_epochs, clf_batch_size, clf_lr,
            clf_weight_decay: the linear head's training (see
            :class:`~geocsp.data.geoworld_classifier.ClassifierSettings`).
        probs_topk: 0 = dense val probabilities; k > 0 = sparse, top-k per row.
        land_mc_samples: Monte Carlo draws per class for the land fraction of its range
            (the normaliser of the true density).
    """

    num_classes: int = 150
    num_genera: int = 40
    feature_dim: int = 64
    train_rows: int = 12_000
    unlabeled_rows: int = 36_000
    val_per_class: int = 20
    val_missing_frac: float = 0.01
    zipf_exponent: float = 1.2
    min_train_per_class: int = 2
    max_train_per_class: int = 500
    max_components: int = 3
    range_km_min: float = 200.0
    range_km_max: float = 3000.0
    genus_realm_km: float = 2500.0
    genus_norm: float = 8.0
    class_norm: float = 2.0
    noise_std: float = 1.0
    habitat_norm: float = 2.0
    habitat_length_km: float = 1500.0
    habitat_rank: int = 16
    ratios: tuple[float, ...] = (0.05, 0.1, 0.2, 1.0)
    clf_full_batch_rows: int = 65536
    clf_lbfgs_iters: int = 50
    clf_epochs: int = 2
    clf_batch_size: int = 4096
    clf_lr: float = 1e-3
    clf_weight_decay: float = 1e-3
    probs_topk: int = 0
    land_mc_samples: int = 2000

    def __post_init__(self) -> None:
        positive = ("num_classes", "num_genera", "feature_dim", "train_rows", "val_per_class",
                    "max_components", "habitat_rank", "clf_epochs", "clf_batch_size", "clf_lbfgs_iters",
                    "land_mc_samples", "range_km_min", "genus_realm_km", "noise_std",
                    "habitat_length_km", "clf_lr")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"GeoWorldConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("unlabeled_rows", "probs_topk", "genus_norm", "class_norm",
                     "habitat_norm", "zipf_exponent", "clf_weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"GeoWorldConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.num_genera > self.num_classes:
            raise ConfigError(f"GeoWorldConfig.num_genera ({self.num_genera}) must be <= num_classes ({self.num_classes})")
        if not 2 <= self.min_train_per_class <= self.max_train_per_class:
            raise ConfigError("GeoWorldConfig needs 2 <= min_train_per_class <= max_train_per_class")
        q = self.num_classes
        if not q * self.min_train_per_class <= self.train_rows <= q * self.max_train_per_class:
            raise ConfigError(f"GeoWorldConfig.train_rows={self.train_rows} must lie in "
                              f"[num_classes*min_train_per_class, num_classes*max_train_per_class] = "
                              f"[{q * self.min_train_per_class}, {q * self.max_train_per_class}]")
        if not self.range_km_min <= self.range_km_max <= 10_000:
            raise ConfigError("GeoWorldConfig needs 0 < range_km_min <= range_km_max <= 10000 km")
        if not 0.0 <= self.val_missing_frac < 1.0:
            raise ConfigError(f"GeoWorldConfig.val_missing_frac must be in [0, 1), got {self.val_missing_frac}")
        if self.clf_batch_size > self.clf_full_batch_rows:
            raise ConfigError("GeoWorldConfig.clf_batch_size must be <= clf_full_batch_rows")
        if not self.ratios or any(not 0.0 < r <= 1.0 for r in self.ratios):
            raise ConfigError(f"GeoWorldConfig.ratios must be non-empty values in (0, 1], got {self.ratios}")

    def classifier(self) -> ClassifierSettings:
        """The linear head's optimisation settings."""
        return ClassifierSettings(self.clf_full_batch_rows, self.clf_lbfgs_iters, self.clf_epochs,
                                  self.clf_batch_size, self.clf_lr, self.clf_weight_decay)


WORLD_PRESETS: Registry[GeoWorldConfig] = Registry("GeoWorld preset")
"""Named GeoWorld configurations: ``small``, ``default``, ``inat-scale``."""
WORLD_PRESETS.register("small", description="tests: 40 classes, 3k train, D=32, < 10 s")(
    GeoWorldConfig(num_classes=40, num_genera=12, feature_dim=32, train_rows=3000,
                   unlabeled_rows=6000, val_per_class=10, max_train_per_class=300,
                   land_mc_samples=1000))
WORLD_PRESETS.register("default", description="the demo: 150 classes, 12k train, 36k unlabeled")(
    GeoWorldConfig())
WORLD_PRESETS.register("inat-scale", description="benchmarks: iNat2018 shapes, 437,513 x 2048")(
    GeoWorldConfig(num_classes=8142, num_genera=4412, feature_dim=2048, train_rows=437_513,
                   unlabeled_rows=0, val_per_class=3, max_train_per_class=1000,
                   clf_full_batch_rows=4096, clf_epochs=1, probs_topk=100,
                   land_mc_samples=500))


def get_world_config(preset: str = "default", **overrides: Any) -> GeoWorldConfig:
    """The preset's config with ``overrides`` applied (coerced and validated).

    Raises:
        ConfigError: on an unknown preset (with "did you mean") or an unknown/invalid knob.
    """
    base = WORLD_PRESETS.get(preset).obj
    if not overrides:
        return base
    return from_dict(GeoWorldConfig, {**to_dict(base), **overrides}, where="GeoWorldConfig")


@dataclass
class GeoWorld:
    """An in-memory world, as returned by :func:`generate_world`.

    Args:
        config: the knobs. seed: the seed.
        classes: Q class names (``g<genus>_s<class>``).
        splits: ``train``, ``unlabeled`` (when unlabeled_rows > 0) and ``val``, ready for
            :func:`~geocsp.data.dataset.write_dataset`.
        truth: the true ranges and abundance (see :func:`true_range_density`).
    """

    config: GeoWorldConfig
    seed: int
    classes: list[str]
    splits: dict[str, Any]
    truth: dict[str, np.ndarray]


# --------------------------------------------------------------------------- features


def _feature_model(cfg: GeoWorldConfig, genus: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Class means (Q, D) and the habitat field's random Fourier features."""
    d, m = cfg.feature_dim, cfg.habitat_rank
    proto = rng.standard_normal((cfg.num_genera, d)) * (cfg.genus_norm / math.sqrt(d))
    offset = rng.standard_normal((cfg.num_classes, d)) * (cfg.class_norm / math.sqrt(d))
    return {
        "mean": (proto[genus] + offset).astype(np.float32),
        "omega": rng.standard_normal((3, m)) * (EARTH_RADIUS_KM / cfg.habitat_length_km),
        "phase": rng.uniform(0.0, 2.0 * np.pi, m),
        "mix": (rng.standard_normal((m, d)) * (cfg.habitat_norm / math.sqrt(d)) * math.sqrt(2.0 / m)),
    }


def habitat(model: dict[str, np.ndarray], xyz: np.ndarray) -> np.ndarray:
    """(N, D) habitat component: √(2/M) cos(xyz Ω + φ) A, a smooth random field on the sphere.

    Ω ~ N(0, (R/ℓ)² I) makes it a stationary Gaussian field with squared-exponential
    correlation of length ℓ = habitat_length_km; its RMS norm is habitat_norm.
    """
    return (np.cos(xyz @ model["omega"] + model["phase"]) @ model["mix"]).astype(np.float32)


def _fill_features(model: dict[str, np.ndarray], y: np.ndarray, xyz: np.ndarray, noise_std: float,
                   rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """out[i] = mean[y_i] + noise_std · ε_i + habitat(x_i), chunk by chunk (out may be a memmap)."""
    d = out.shape[1]
    for s in range(0, len(y), _CHUNK_ROWS):
        e = min(len(y), s + _CHUNK_ROWS)
        chunk = rng.standard_normal((e - s, d), dtype=np.float32) * np.float32(noise_std)
        chunk += model["mean"][y[s:e]]
        chunk += habitat(model, xyz[s:e])
        out[s:e] = chunk
    return out


def _make_split(y: np.ndarray, labelled: bool, ctx: dict[str, Any], rng: np.random.Generator,
                out: np.ndarray, missing_frac: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Locations, features and table of one split whose rows belong to classes ``y``."""
    xyz = draw_range_points(ctx["truth"], y, rng)
    feats = _fill_features(ctx["model"], y, xyz, ctx["noise_std"], rng, out)
    lonlat = xyz_to_lonlat(xyz)
    n_missing = round(missing_frac * len(y))
    lonlat[rng.choice(len(y), n_missing, replace=False)] = np.nan
    names = np.asarray(ctx["classes"], dtype=object)
    label = names[y] if labelled else np.full(len(y), None, dtype=object)
    table = pd.DataFrame({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "label": label})
    return table, feats


def _alloc(shape: tuple[int, int], scratch_dir: Path | None, name: str) -> np.ndarray:
    if scratch_dir is None:
        return np.empty(shape, np.float32)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(scratch_dir / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)


def generate_world(config: GeoWorldConfig, seed: int = 0, *, scratch_dir: str | Path | None = None,
                   device: str = "cpu") -> GeoWorld:
    """Generate a world in memory (features in a memmap under ``scratch_dir`` if given).

    Independent random streams (numpy ``SeedSequence(seed).spawn``) drive the truth, the
    feature model and each split, so changing e.g. ``unlabeled_rows`` leaves ``train``
    unchanged; the classifiers' subsets are ``stratified_subset(train_labels, λ, seed)``.

    Args:
        config: the knobs.
        seed: the world seed (also the seed of the stratified λ-subsets).
        scratch_dir: where to memory-map large feature matrices; None keeps them in RAM.
        device: torch device for training the image classifier.

    Returns:
        The :class:`GeoWorld`.
    """
    cfg, seed = config, int(seed)
    s_truth, s_feat, s_train, s_unl, s_val = np.random.SeedSequence(seed).spawn(5)
    truth = draw_truth(cfg, np.random.default_rng(s_truth))
    q, wq, wg = cfg.num_classes, len(str(cfg.num_classes - 1)), len(str(cfg.num_genera - 1))
    classes = [f"g{g:0{wg}d}_s{c:0{wq}d}" for c, g in enumerate(truth["genus"])]
    ctx = {"truth": truth, "classes": classes, "noise_std": cfg.noise_std,
           "model": _feature_model(cfg, truth["genus"], np.random.default_rng(s_feat))}
    scratch = Path(scratch_dir) if scratch_dir is not None else None
    d = cfg.feature_dim

    rng = np.random.default_rng(s_train)
    y_train = rng.permutation(np.repeat(np.arange(q), truth["train_counts"]))
    train = _make_split(y_train, True, ctx, rng, _alloc((len(y_train), d), scratch, "train"))
    rng = np.random.default_rng(s_val)
    y_val = rng.permutation(np.repeat(np.arange(q), cfg.val_per_class))
    val = _make_split(y_val, True, ctx, rng, _alloc((len(y_val), d), None, "val"), cfg.val_missing_frac)
    from geocsp.data.dataset import SplitData

    probs = classifier_probs(train[1], y_train, val[1], q, cfg.ratios, cfg.classifier(), seed,
                             cfg.probs_topk, device)
    splits = {"train": SplitData(*train)}
    if cfg.unlabeled_rows:
        rng = np.random.default_rng(s_unl)
        y_unl = rng.choice(q, cfg.unlabeled_rows, p=truth["abundance"])
        splits["unlabeled"] = SplitData(*_make_split(
            y_unl, False, ctx, rng, _alloc((len(y_unl), d), scratch, "unlabeled")))
    splits["val"] = SplitData(val[0], val[1], probs)
    return GeoWorld(cfg, seed, classes, splits, truth)


# --------------------------------------------------------------------------- on disk


def cache_root() -> Path:
    """``$GEOCSP_CACHE/geoworld`` if set, else ``~/.cache/geocsp/geoworld``."""
    return cache_dir() / "geoworld"


def _identity(preset: str, seed: int, cfg: GeoWorldConfig) -> dict[str, Any]:
    """What a world on disk must record to be reused (JSON-normalised)."""
    ident = {"generator": "geoworld", "version": GENERATOR_VERSION, "preset": preset,
             "seed": int(seed), "config": to_dict(cfg)}
    return json.loads(json.dumps(ident))


def default_world_dir(preset: str, seed: int, config: GeoWorldConfig | None = None) -> Path:
    """Cache directory ``<cache_root>/<preset>-seed<seed>`` (plus a hash of any overrides)."""
    name = WORLD_PRESETS.canonical(preset)
    path = cache_root() / f"{name}-seed{int(seed)}"
    if config is not None and config != WORLD_PRESETS.get(name).obj:
        digest = hashlib.sha1(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()[:10]
        path = path.with_name(f"{path.name}-{digest}")
    return path


def _is_complete(path: Path, ident: dict[str, Any]) -> bool:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("provenance", {}).get("geoworld") == ident and (path / TRUTH_FILE).is_file()


def write_world(world: GeoWorld, out: str | Path, identity: dict[str, Any]) -> Path:
    """Write ``world`` with ``write_dataset`` (atomic), then ``truth.npz`` beside the manifest."""
    from geocsp.data.dataset import write_dataset

    summary = {name: len(sd.table) for name, sd in world.splits.items()}
    provenance = {"geoworld": identity, "rows": summary,
                  "description": "synthetic GeoWorld (geocsp.data.geoworld); true ranges in truth.npz"}
    path = write_dataset(out, world.splits, world.classes, provenance)
    with atomic_path(path / TRUTH_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **world.truth)
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


# --------------------------------------------------------------------------- report


def _top1_hits(scores: Any, labels: np.ndarray) -> np.ndarray:
    """(N,) bool, argmax of each row of a dense or sparse score matrix equals the label."""
    return np.asarray(scores.argmax(axis=1)).ravel() == labels


def world_report(path: str | Path) -> dict[str, Any]:
    """Measured headline numbers of a world's validation split.

    Returns:
        ``{"classes", "val_rows", "val_missing_location", "chance_top1",
        "image_top1": {prob key: top-1}, "location_top1" (oracle ranges, rows with a location),
        "oracle_top1" (true location probs × ``default`` image probs; image alone without a
        location), "preset", "seed"}``; accuracies are fractions in [0, 1].
    """
    from geocsp.data.dataset import load_dataset

    ds = load_dataset(path, verify_values=False)
    truth = load_truth(path)
    val = ds.split("val")
    y, has = val.labels, val.has_location
    ident = ds.manifest.get("provenance", {}).get("geoworld", {})
    image = {k: float(_top1_hits(val.probs(k, dense=False), y).mean()) for k in val.prob_keys}
    loc_hits, fused_hits = [], []
    img = val.probs("default", dense=False)
    for s in range(0, len(y), 2048):
        sl = slice(s, s + 2048)
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
