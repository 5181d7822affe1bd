"""GeoWorld's knobs: :class:`GeoWorldConfig` and the named presets (docs/geoworld.md)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from geocsp._registry import Registry
from geocsp.config import from_dict, to_dict
from geocsp.data.geoworld.classifier import ClassifierSettings
from geocsp.errors import ConfigError

__all__ = ["GENERATOR_VERSION", "WORLD_PRESETS", "GeoWorldConfig", "get_world_config"]

GENERATOR_VERSION = 5
"""Bumped whenever the same (config, seed) would produce different data (3: the λ = 1
classifier is stored once, as ``default``, no longer also as ``ratio1.000``; 4: the
classifiers' top-k probabilities are also stored on ``train`` and ``unlabeled``, every
earlier array unchanged; 5: on ``train``, each classifier's own training rows get
out-of-fold probabilities (``train_oof_folds``), every other array unchanged)."""

_LATER_KNOBS = ("calib_per_class", "extra_probs_topk", "train_oof_folds")
"""Knobs added after GENERATOR_VERSION 2: left out of a world's identity while they keep
their default, so the cache-directory names of existing worlds stay unchanged. Their
defaults generate every array the generator did before they existed; ``extra_probs_topk``'s
(20) adds the train / unlabeled probabilities, which GENERATOR_VERSION 4 records, so a
cached world of version 3 is regenerated in place."""


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
        calib_per_class: rows per class of the held-out ``calib`` split (0 = no such
            split), drawn like ``val`` (same missing-location fraction) from a stream of
            its own, with the probabilities of the same image classifiers; fusion
            parameters are fitted on it, never on the reported ``val``.
        zipf_exponent: s in n_c ∝ rank^-s (before clipping).
        min_train_per_class: floor on train rows per class (≥ 1).
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
            :class:`~geocsp.data.geoworld.classifier.ClassifierSettings`).
        probs_topk: 0 = dense val probabilities; k > 0 = sparse, top-k per row.
        extra_probs_topk: k > 0 = the same classifiers' probabilities are also stored on
            ``train`` and ``unlabeled``, sparse top-k per row (renormalised): the soft
            targets of distillation (``geocsp.training.distill``); 0 = none there.
        train_oof_folds: K >= 2 = on ``train``, the rows a classifier was trained on (its
            λ-subset) get *out-of-fold* probabilities: K heads, each trained on the subset
            without one fold, score that fold (what a user's cross-validated predictions
            give; the labelled-subset cross-fit of the calibrated fusion needs them,
            docs/fusion.md); 0 = the head's in-sample probabilities on those rows.
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
    calib_per_class: int = 0
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
    extra_probs_topk: int = 20
    train_oof_folds: int = 3
    land_mc_samples: int = 2000

    def __post_init__(self) -> None:
        positive = ("num_classes", "num_genera", "feature_dim", "train_rows", "val_per_class",
                    "max_components", "habitat_rank", "clf_epochs", "clf_batch_size", "clf_lbfgs_iters",
                    "land_mc_samples", "range_km_min", "genus_realm_km", "noise_std",
                    "habitat_length_km", "clf_lr")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"GeoWorldConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("unlabeled_rows", "calib_per_class", "probs_topk", "extra_probs_topk", "genus_norm", "class_norm",
                     "habitat_norm", "zipf_exponent", "clf_weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"GeoWorldConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.train_oof_folds < 0 or self.train_oof_folds == 1:
            raise ConfigError(f"GeoWorldConfig.train_oof_folds must be 0 or >= 2, got {self.train_oof_folds}")
        if self.num_genera > self.num_classes:
            raise ConfigError(f"GeoWorldConfig.num_genera ({self.num_genera}) must be <= num_classes ({self.num_classes})")
        if not 1 <= self.min_train_per_class <= self.max_train_per_class:
            raise ConfigError("GeoWorldConfig needs 1 <= min_train_per_class <= max_train_per_class, got "
                              f"{self.min_train_per_class} and {self.max_train_per_class}")
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
        """The linear head's optimisation settings.

        Returns:
            The ``clf_*`` knobs as :class:`~geocsp.data.geoworld.classifier.ClassifierSettings`.
        """
        return ClassifierSettings(self.clf_full_batch_rows, self.clf_lbfgs_iters, self.clf_epochs,
                                  self.clf_batch_size, self.clf_lr, self.clf_weight_decay)

    def identity(self) -> dict[str, Any]:
        """The knob values that identify the world (its manifest provenance, cache hash).

        Every knob, except knobs added after generator version 2 that keep their default
        (:data:`_LATER_KNOBS`): such a config keeps its cache directory; what its default
        adds is recorded by the generator version in the world's provenance.

        Returns:
            Knob name -> value, as :func:`geocsp.config.to_dict` gives them.
        """
        unchanged = {f.name for f in fields(self) if f.name in _LATER_KNOBS and getattr(self, f.name) == f.default}
        return {k: v for k, v in to_dict(self).items() if k not in unchanged}


WORLD_PRESETS: Registry[GeoWorldConfig] = Registry("GeoWorld preset")
"""Named GeoWorld configurations: ``small``, ``small-calib``, ``default``, ``default-calib``,
``longtail``, ``inat-scale``."""
_SMALL = GeoWorldConfig(num_classes=40, num_genera=12, feature_dim=32, train_rows=3000, unlabeled_rows=6000,
                        val_per_class=10, max_train_per_class=300, land_mc_samples=1000)
WORLD_PRESETS.register("small", description="tests: 40 classes, 3k train, D=32, < 10 s")(_SMALL)
WORLD_PRESETS.register("small-calib", description="small + a held-out calib split (5 per class): the quick demo")(
    replace(_SMALL, calib_per_class=5))
WORLD_PRESETS.register("default", description="the demo: 150 classes, 12k train, 36k unlabeled")(
    GeoWorldConfig())
WORLD_PRESETS.register("default-calib", description="default + a held-out calib split (5 per class)")(
    GeoWorldConfig(calib_per_class=5))
WORLD_PRESETS.register("longtail", description="hostile: 2,000 rare endemic classes, 1-10 train each, strong image head")(
    GeoWorldConfig(num_classes=2000, num_genera=400, feature_dim=64, train_rows=6000,
                   unlabeled_rows=40_000, val_per_class=3, calib_per_class=2, min_train_per_class=1,
                   max_train_per_class=10, range_km_min=100.0, range_km_max=800.0,
                   genus_realm_km=1500.0, class_norm=5.0, clf_lbfgs_iters=200,
                   clf_weight_decay=1e-4, land_mc_samples=500))
WORLD_PRESETS.register("inat-scale", description="benchmarks: iNat2018 shapes, 437,513 x 2048")(
    GeoWorldConfig(num_classes=8142, num_genera=4412, feature_dim=2048, train_rows=437_513,
                   unlabeled_rows=0, val_per_class=3, max_train_per_class=1000,
                   clf_full_batch_rows=4096, clf_epochs=1, probs_topk=100,
                   extra_probs_topk=0, land_mc_samples=500))


def get_world_config(preset: str = "default", **overrides: Any) -> GeoWorldConfig:
    """The preset's config with ``overrides`` applied (coerced and validated).

    Args:
        preset: a name of :data:`WORLD_PRESETS` (``small``, ``default``, ``default-calib``,
            ``longtail``, ``inat-scale``).
        **overrides: knob values replacing the preset's.

    Returns:
        The :class:`GeoWorldConfig`.

    Raises:
        ConfigError: on an unknown preset (with "did you mean") or an unknown/invalid knob.
    """
    base = WORLD_PRESETS.get(preset).obj
    if not overrides:
        return base
    return from_dict(GeoWorldConfig, {**to_dict(base), **overrides}, where="GeoWorldConfig")
