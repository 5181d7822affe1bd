"""GeoWorld generation in memory: the seeded streams, the splits and :class:`GeoWorld`.

* **Abundance.** Train counts follow a capped Zipf law (iNat2018 caps classes at 1000).
* **Splits.** ``train`` (labelled), ``unlabeled`` (image–location pairs, no labels),
  ``val`` (a fixed number per class, ~1 % rows without location) with image-classifier
  probabilities from a linear head really trained on each stratified λ-subset of train,
  and, when ``calib_per_class`` > 0, ``calib``: drawn like ``val`` from a stream of its own,
  with the same heads' probabilities (held out for fitting fusion parameters). With
  ``extra_probs_topk`` > 0 the same heads' sparse top-k probabilities are also stored on
  ``train`` and ``unlabeled`` (the soft targets of distillation); on ``train`` a head's own
  training rows are scored out of fold (``train_oof_folds``), as cross-validated predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geocsp.coords import xyz_to_lonlat
from geocsp.data.geoworld.classifier import classifier_probs_many
from geocsp.data.geoworld.config import GeoWorldConfig
from geocsp.data.geoworld.features import FeatureModel, feature_model, fill_features
from geocsp.data.geoworld.ranges import draw_range_points, draw_truth
from geocsp.data.geoworld.truth import Truth
from geocsp.data.writer import SplitData

__all__ = ["GeoWorld", "SplitContext", "generate_world"]


@dataclass
class GeoWorld:
    """An in-memory world, as returned by :func:`generate_world`.

    Args:
        config: the knobs.
        seed: the seed.
        classes: Q class names (``g<genus>_s<class>``).
        splits: ``train``, ``unlabeled`` (when unlabeled_rows > 0), ``val`` and ``calib``
            (when calib_per_class > 0), ready for
            :func:`~geocsp.data.dataset.write_dataset`.
        truth: the true ranges and abundance (see
            :func:`~geocsp.data.geoworld.truth.true_range_density`).
    """

    config: GeoWorldConfig
    seed: int
    classes: list[str]
    splits: dict[str, SplitData]
    truth: Truth


@dataclass(frozen=True)
class SplitContext:
    """What every split of one world is drawn from.

    Args:
        truth: the true ranges (locations are drawn from them).
        classes: Q class names (the ``label`` column).
        noise_std: per-dimension std of the per-photo feature noise.
        model: the image-feature model.
    """

    truth: Truth
    classes: list[str]
    noise_std: float
    model: FeatureModel


def _make_split(y: np.ndarray, labelled: bool, ctx: SplitContext, rng: np.random.Generator,
                out: np.ndarray, missing_frac: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Locations, features and table of one split whose rows belong to classes ``y``."""
    xyz = draw_range_points(ctx.truth, y, rng)
    feats = fill_features(ctx.model, y, xyz, ctx.noise_std, rng, out)
    lonlat = xyz_to_lonlat(xyz)
    n_missing = round(missing_frac * len(y))
    lonlat[rng.choice(len(y), n_missing, replace=False)] = np.nan
    names = np.asarray(ctx.classes, dtype=object)
    label = names[y] if labelled else np.full(len(y), None, dtype=object)
    table = pd.DataFrame({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "label": label})
    return table, feats


def _alloc(shape: tuple[int, int], scratch_dir: Path | None, name: str) -> np.ndarray:
    """An empty float32 array, or a ``.npy`` memmap under ``scratch_dir`` when given."""
    if scratch_dir is None:
        return np.empty(shape, np.float32)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(scratch_dir / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)


def generate_world(config: GeoWorldConfig, seed: int = 0, *, scratch_dir: str | Path | None = None,
                   device: str = "cpu") -> GeoWorld:
    """Generate a world in memory (features in a memmap under ``scratch_dir`` if given).

    Independent random streams (numpy ``SeedSequence(seed).spawn``) drive the truth, the
    feature model and each split, so changing e.g. ``unlabeled_rows`` or ``calib_per_class``
    leaves the other splits unchanged; the classifiers' subsets are
    ``stratified_subset(train_labels, λ, seed)``, and the heads trained on them predict
    both ``val`` and ``calib``.

    Args:
        config: the knobs.
        seed: the world seed (also the seed of the stratified λ-subsets).
        scratch_dir: where to memory-map large feature matrices; None keeps them in RAM.
        device: torch device for training the image classifier.

    Returns:
        The :class:`GeoWorld`.
    """
    cfg, seed = config, int(seed)
    # spawn(n) keys child i by i alone: the first five streams are those of spawn(5)
    s_truth, s_feat, s_train, s_unl, s_val, s_calib = np.random.SeedSequence(seed).spawn(6)
    truth = draw_truth(cfg, np.random.default_rng(s_truth))
    q, wq, wg = cfg.num_classes, len(str(cfg.num_classes - 1)), len(str(cfg.num_genera - 1))
    classes = [f"g{g:0{wg}d}_s{c:0{wq}d}" for c, g in enumerate(truth.genus)]
    ctx = SplitContext(truth, classes, cfg.noise_std,
                       feature_model(cfg, truth.genus, np.random.default_rng(s_feat)))
    scratch = Path(scratch_dir) if scratch_dir is not None else None
    d = cfg.feature_dim

    rng = np.random.default_rng(s_train)
    y_train = rng.permutation(np.repeat(np.arange(q), truth.train_counts))
    train = _make_split(y_train, True, ctx, rng, _alloc((len(y_train), d), scratch, "train"))
    rng = np.random.default_rng(s_val)
    y_val = rng.permutation(np.repeat(np.arange(q), cfg.val_per_class))
    val = _make_split(y_val, True, ctx, rng, _alloc((len(y_val), d), None, "val"), cfg.val_missing_frac)
    held_out = {"val": val}
    if cfg.calib_per_class:
        rng = np.random.default_rng(s_calib)
        y_cal = rng.permutation(np.repeat(np.arange(q), cfg.calib_per_class))
        held_out["calib"] = _make_split(y_cal, True, ctx, rng, _alloc((len(y_cal), d), None, "calib"),
                                        cfg.val_missing_frac)
    pairs = {"train": train}
    if cfg.unlabeled_rows:  # its own stream: drawing it before the classifiers changes nothing
        rng = np.random.default_rng(s_unl)
        y_unl = rng.choice(q, cfg.unlabeled_rows, p=truth.abundance)
        pairs["unlabeled"] = _make_split(y_unl, False, ctx, rng, _alloc((len(y_unl), d), scratch, "unlabeled"))
    extra = pairs if cfg.extra_probs_topk else {}
    predicted = {**held_out, **extra}  # each split is predicted on its own: val's probs do not change
    topks = [cfg.probs_topk] * len(held_out) + [cfg.extra_probs_topk] * len(extra)
    oof = (list(predicted).index("train"), cfg.train_oof_folds) if "train" in predicted else None
    probs = classifier_probs_many(train[1], y_train, [f for _, f in predicted.values()], q, cfg.ratios,
                                  cfg.classifier(), seed, topks, device, oof=oof)
    probs_of = dict(zip(predicted, probs, strict=True))
    splits = {name: SplitData(table, feats, probs_of.get(name, {})) for name, (table, feats) in pairs.items()}
    for name, (table, feats) in held_out.items():
        splits[name] = SplitData(table, feats, probs_of[name])
    return GeoWorld(cfg, seed, classes, splits, truth)
