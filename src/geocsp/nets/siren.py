"""SIREN: sinusoidal representation network (Sitzmann et al. 2020, arXiv 2006.09661)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.nets.base import NETWORKS, check_positive, check_probability


@dataclass(frozen=True)
class SirenConfig:
    """Config of :class:`Siren`.

    Args:
        hidden_dim: width of the sine layers.
        num_layers: number of sine layers before the linear output layer.
        w0: frequency factor of the hidden sine layers.
        w0_initial: frequency factor of the first sine layer.
        dropout: dropout after every sine layer (0 disables it).
    """

    hidden_dim: int = 256
    num_layers: int = 2
    w0: float = 1.0
    w0_initial: float = 30.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive("siren", hidden_dim=self.hidden_dim, num_layers=self.num_layers)
        if self.w0 <= 0 or self.w0_initial <= 0:
            raise ConfigError(
                f"siren.w0 and siren.w0_initial must be > 0, got {self.w0}, {self.w0_initial}"
            )
        check_probability("siren", "dropout", self.dropout)


def siren_init_(linear: nn.Linear, w0: float, is_first: bool) -> None:
    """SIREN weight init in place.

    U(-1/n, 1/n) for the first layer, else U(-c, c) with c = sqrt(6/n)/w0 (n = fan-in).
    The bias keeps PyTorch's default init.

    Args:
        linear: the layer to initialise (its weight is overwritten).
        w0: the sine frequency of the layer's activation.
        is_first: whether this is the network's first layer.
    """
    fan_in = linear.in_features
    bound = 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / w0
    nn.init.uniform_(linear.weight, -bound, bound)


class SineLayer(nn.Module):
    """y = sin(w0 * (W x + b)) with SIREN initialisation.

    Args:
        in_dim: input width.
        out_dim: output width.
        w0: frequency factor.
        is_first: use the first-layer init.
    """

    def __init__(self, in_dim: int, out_dim: int, w0: float, is_first: bool) -> None:
        super().__init__()
        self.w0 = float(w0)
        self.linear = nn.Linear(in_dim, out_dim)
        siren_init_(self.linear, w0, is_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_dim) to (B, out_dim)."""
        return torch.sin(self.w0 * self.linear(x))


@NETWORKS.register("siren", config=SirenConfig)
class Siren(nn.Module):
    """SIREN network (Sitzmann et al. 2020).

    Used with spherical harmonics by Rußwurm et al. 2024, arXiv 2310.06743.

    ``num_layers`` sine layers (the first with ``w0_initial``, the rest with ``w0``), each
    optionally followed by dropout, then a linear output layer with SIREN init.

    Args:
        in_dim: input width.
        out_dim: output (embedding) width.
        config: network hyper-parameters.
    """

    def __init__(self, in_dim: int, out_dim: int, config: SirenConfig | None = None) -> None:
        super().__init__()
        cfg = config or SirenConfig()
        self.config = cfg
        layers: list[nn.Module] = []
        width = in_dim
        for i in range(cfg.num_layers):
            first = i == 0
            layers.append(
                SineLayer(width, cfg.hidden_dim, cfg.w0_initial if first else cfg.w0, first)
            )
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = cfg.hidden_dim
        self.body = nn.Sequential(*layers)
        self.output = nn.Linear(width, out_dim)
        siren_init_(self.output, cfg.w0, is_first=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_dim) features to (B, out_dim) embeddings."""
        return self.output(self.body(x))
