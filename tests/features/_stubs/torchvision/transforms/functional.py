"""InterpolationMode only; every other function raises."""

import enum


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def __getattr__(name):
    def _unavailable(*args, **kwargs):
        raise RuntimeError(f"torchvision stub: transforms.functional.{name} is not available")

    return _unavailable
