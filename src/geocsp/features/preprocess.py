"""The one image loader and preprocessor (Pillow + NumPy, no torchvision).

Re-implements timm's evaluation transform (``timm.data.transforms_imagenet_eval`` with
``crop_mode="center"``), which open_clip and torchvision's classification presets share:

1. resize the shorter side to ``floor(size / crop_pct)`` (long side
   ``int(scale * long / short)``) with Pillow's filter for ``interpolation``;
2. centre-crop ``size x size`` at offsets ``int(round((H - size) / 2))``;
3. ``/255`` in float32, then ``(x - mean) / std``; HWC -> CHW.

This equals torchvision's ``Resize(scale) -> CenterCrop(size) -> ToTensor() ->
Normalize(mean, std)`` on PIL images bit for bit (checked against reference outputs
in ``tests/features/fixtures``, made by ``tests/features/fixtures/make_fixtures.py``).

Decoding: EXIF orientation is applied; every mode becomes RGB with Pillow's
``convert("RGB")`` (as timm's loader does: alpha is dropped, CMYK and palette images
are converted), except 16/32-bit integer images, which are rescaled to 8 bits
(``round(v / 257)``) instead of being clipped at 255.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from geocsp.config import from_dict
from geocsp.data.readers.exif import gps_from_exif
from geocsp.errors import ConfigError, DatasetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


@dataclass(frozen=True)
class PreprocessConfig:
    """Evaluation preprocessing of one backbone (timm ``pretrained_cfg`` fields).

    Args:
        size: side of the square crop, pixels.
        crop_pct: crop fraction; the shorter side is first resized to ``floor(size / crop_pct)``.
        interpolation: Pillow filter name, one of ``INTERPOLATIONS``.
        mean: per-channel RGB mean on the [0, 1] scale.
        std: per-channel RGB standard deviation on the [0, 1] scale.
    """

    size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if int(self.size) != self.size or self.size < 1:
            raise ConfigError(f"preprocess.size: expected a positive integer, got {self.size}")
        if not 0.0 < float(self.crop_pct) <= 1.0:
            raise ConfigError(f"preprocess.crop_pct: expected 0 < crop_pct <= 1, got {self.crop_pct}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"preprocess.interpolation: expected one of {', '.join(INTERPOLATIONS)}, "
                f"got {self.interpolation!r}"
            )
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3 or not all(math.isfinite(v) for v in value):
                raise ConfigError(f"preprocess.{name}: expected 3 finite numbers, got {value}")
            object.__setattr__(self, name, value)
        if min(self.std) <= 0:
            raise ConfigError(f"preprocess.std: expected positive values, got {self.std}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "crop_pct", float(self.crop_pct))

    @classmethod
    def from_json(cls, text: str, where: str = "--preprocess") -> PreprocessConfig:
        """Parse a JSON object of config fields, e.g. ``{"size": 224, "crop_pct": 0.875}``.

        Args:
            text: the JSON text.
            where: what the text came from, for error messages.

        Returns:
            The validated config.

        Raises:
            ConfigError: invalid JSON, an unknown field or an invalid value.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: invalid JSON ({e.msg})") from None
        return from_dict(cls, data, where=where)

    @property
    def resize_to(self) -> int:
        """Shorter-side length before the centre crop, pixels."""
        return math.floor(self.size / self.crop_pct)


def _pil_filter(name: str) -> Any:
    return getattr(Image.Resampling, name.upper())


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (16/32-bit integers rescaled, not clipped).

    Args:
        img: a Pillow image in any mode.

    Returns:
        The image in mode ``RGB`` (``img`` itself when it already is).
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if img.mode == "F":
        arr = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | Path) -> tuple[Image.Image, tuple[float, float] | None]:
    """Decode an image fully: EXIF orientation applied, RGB, plus its EXIF GPS.

    Args:
        path: image file.

    Returns:
        ``(rgb_image, lonlat)`` where ``lonlat`` is ``(lon, lat)`` degrees or None.

    Raises:
        DatasetError: if the file is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            exif = img.getexif()
            gps = gps_from_exif(exif)
            return to_rgb(ImageOps.exif_transpose(img)), gps
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def resize_crop(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """Shorter side to ``cfg.resize_to`` then a centre ``size x size`` crop (RGB in, RGB out).

    Args:
        img: an RGB Pillow image.
        cfg: preprocessing configuration (size, crop_pct, interpolation).

    Returns:
        The ``cfg.size x cfg.size`` crop.
    """
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = cfg.resize_to, int(cfg.resize_to * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), _pil_filter(cfg.interpolation))
    top = round((new_h - cfg.size) / 2.0)  # torchvision: int(round(...)), banker's rounding
    left = round((new_w - cfg.size) / 2.0)
    return img.crop((left, top, left + cfg.size, top + cfg.size))


def normalize(img: Image.Image, cfg: PreprocessConfig) -> np.ndarray:
    """``(pixel / 255 - mean) / std`` in float32, in torchvision's order of operations.

    Args:
        img: an RGB Pillow image of H x W pixels.
        cfg: preprocessing configuration (mean, std).

    Returns:
        (3, H, W) float32 array.
    """
    scaled: np.ndarray = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    x: np.ndarray = (scaled - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess(img: Image.Image, cfg: PreprocessConfig) -> np.ndarray:
    """One decoded image to the backbone's input.

    Args:
        img: a Pillow image (any mode; converted with :func:`to_rgb`).
        cfg: preprocessing configuration.

    Returns:
        (3, size, size) float32 array, normalised.
    """
    return normalize(resize_crop(to_rgb(img), cfg), cfg)


def load_and_preprocess(
    path: str | Path, cfg: PreprocessConfig
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """:func:`load_image` then :func:`preprocess`.

    Args:
        path: image file.
        cfg: preprocessing configuration.

    Returns:
        ``(x, lonlat)``: (3, size, size) float32 array and ``(lon, lat)`` degrees or None.

    Raises:
        DatasetError: if the image cannot be decoded.
    """
    img, gps = load_image(path)
    return preprocess(img, cfg), gps
