"""Transforms are unavailable in the stub (geocsp has its own preprocessing)."""

from . import functional
from .functional import InterpolationMode

__all__ = ["InterpolationMode", "functional"]


def __getattr__(name):
    class _Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError(f"torchvision stub: transforms.{name} is not available")

    return _Unavailable
