"""Image -> feature vectors, offline, with local weights only (docs/features.md).

torch (a hard dependency) is imported with the package, but nothing here imports timm,
torchvision, onnxruntime or open_clip at import time: each backend imports its optional
package when it is used, and the ``onnx`` backend runs no torch model.
"""

from __future__ import annotations

from geocsp.features.backends import BACKENDS, Backbone, load_backbone
from geocsp.features.extract import ExtractConfig, extract_features, extract_folder
from geocsp.features.preprocess import PreprocessConfig, load_image, preprocess

__all__ = [
    "BACKENDS",
    "Backbone",
    "ExtractConfig",
    "PreprocessConfig",
    "extract_features",
    "extract_folder",
    "load_backbone",
    "load_image",
    "preprocess",
]
