"""Image -> feature vectors, offline, with local weights only (docs/features.md).

Nothing here imports torch, timm, onnxruntime or open_clip at import time; each backend
imports its package when it is used.
"""

from __future__ import annotations

from geocsp.features.backends import BACKENDS, Backbone, load_backbone
from geocsp.features.extract import ExtractConfig, extract_features
from geocsp.features.preprocess import PreprocessConfig, load_image, preprocess

__all__ = [
    "BACKENDS",
    "Backbone",
    "ExtractConfig",
    "PreprocessConfig",
    "extract_features",
    "load_backbone",
    "load_image",
    "preprocess",
]
