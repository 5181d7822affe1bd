"""GeoWorld: the built-in synthetic world (docs/geoworld.md; issue 3).

A seeded generator of a geocsp dataset whose structure makes the CSP problem real:

* **Taxonomy.** Q classes in G genera. An image feature is
  ``genus prototype + class offset + noise + habitat(location)``: classes of one genus look
  alike, and a photo also shows the habitat around the organism, a smooth function of
  where it was taken (:mod:`~geocsp.data.geoworld.features`).
* **Ranges.** Each class lives on land in a mixture of 1–3 von Mises–Fisher (vMF)
  components; the components of a genus scatter around the genus' home region, so sister
  species are neighbours that overlap only partly. Range sizes are log-uniform from endemic
  (~200 km) to widespread (~3000 km) (:mod:`~geocsp.data.geoworld.ranges`,
  :mod:`~geocsp.data.geoworld.truth`).
* **Abundance.** Train counts follow a capped Zipf law (iNat2018 caps classes at 1000).
* **Splits.** ``train`` (labelled), ``unlabeled`` (image–location pairs, no labels),
  ``val`` (a fixed number per class, ~1 % rows without location) with image-classifier
  probabilities from a linear head really trained on each stratified λ-subset of train
  (:mod:`~geocsp.data.geoworld.generate`, :mod:`~geocsp.data.geoworld.classifier`), and
  optionally ``calib`` (``calib_per_class`` > 0): drawn like ``val``, predicted by the same
  heads, held out for fitting fusion parameters.

Everything is a pure function of (:class:`GeoWorldConfig`, seed)
(:mod:`~geocsp.data.geoworld.config`); the world is written with
:func:`geocsp.data.dataset.write_dataset` plus ``truth.npz`` holding the true ranges
(:mod:`~geocsp.data.geoworld.store`).
"""

from __future__ import annotations

from geocsp.data.geoworld.classifier import (
    ClassifierSettings,
    classifier_probs_many,
    predict_probs,
    train_linear_classifier,
)
from geocsp.data.geoworld.config import (
    GENERATOR_VERSION,
    WORLD_PRESETS,
    GeoWorldConfig,
    get_world_config,
)
from geocsp.data.geoworld.features import FeatureModel, feature_model, fill_features, habitat
from geocsp.data.geoworld.generate import GeoWorld, SplitContext, generate_world
from geocsp.data.geoworld.ranges import (
    draw_range_points,
    draw_truth,
    is_land,
    sample_vmf,
    vmf_log_density,
    zipf_counts,
)
from geocsp.data.geoworld.store import (
    cache_root,
    default_world_dir,
    make_world,
    world_report,
    write_world,
)
from geocsp.data.geoworld.truth import (
    TRUTH_FILE,
    Truth,
    load_truth,
    true_location_probs,
    true_range_density,
)

__all__ = [
    "GENERATOR_VERSION",
    "TRUTH_FILE",
    "WORLD_PRESETS",
    "ClassifierSettings",
    "FeatureModel",
    "GeoWorld",
    "GeoWorldConfig",
    "SplitContext",
    "Truth",
    "cache_root",
    "classifier_probs_many",
    "default_world_dir",
    "draw_range_points",
    "draw_truth",
    "feature_model",
    "fill_features",
    "generate_world",
    "get_world_config",
    "habitat",
    "is_land",
    "load_truth",
    "make_world",
    "predict_probs",
    "sample_vmf",
    "train_linear_classifier",
    "true_location_probs",
    "true_range_density",
    "vmf_log_density",
    "world_report",
    "write_world",
    "zipf_counts",
]
