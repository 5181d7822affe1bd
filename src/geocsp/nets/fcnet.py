"""Mac Aodha et al. residual fully-connected network (``FCNet``), spec §3.2."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.nets.base import NETWORKS, Dropout, check_probability


@dataclass(frozen=True)
class FCNetConfig:
    """Config of :class:`FCNet`.

    Args:
        num_res_blocks: number of residual layers (reference: 4).
        dropout: dropout rate inside each residual layer (reference: 0.5).
    """

    num_res_blocks: int = 4
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.num_res_blocks < 0:
            raise ConfigError(f"fcnet.num_res_blocks must be >= 0, got {self.num_res_blocks}")
        check_probability("fcnet", "dropout", self.dropout)


class ResLayer(nn.Module):
    """Residual layer y = x + ReLU(Linear(Dropout(ReLU(Linear(x))))), width kept.

    Args:
        width: input and output width.
        dropout: dropout rate between the two linear layers.
    """

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, width)
        self.w2 = nn.Linear(width, width)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, width) to (B, width)."""
        y = torch.relu(self.w2(self.dropout(torch.relu(self.w1(x)))))
        return x + y


@NETWORKS.register("fcnet", config=FCNetConfig)
class FCNet(nn.Module):
    """Residual FCNet of Mac Aodha et al. 2019 (arXiv 1906.05272; spec §3.2).

    ``Linear(in -> d) -> ReLU -> num_res_blocks x ResLayer(d)``; the width is the output
    dimension d (reference ``num_filts``). PyTorch default initialisation throughout.

    Args:
        in_dim: input width (4 for the ``wrap`` encoding).
        out_dim: output (embedding) width d, also the width of every residual layer.
        config: network hyper-parameters.
    """

    def __init__(self, in_dim: int, out_dim: int, config: FCNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or FCNetConfig()
        self.config = cfg
        self.input = nn.Linear(in_dim, out_dim)
        self.blocks = nn.ModuleList(
            ResLayer(out_dim, cfg.dropout) for _ in range(cfg.num_res_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_dim) features to (B, out_dim) embeddings."""
        x = torch.relu(self.input(x))
        for block in self.blocks:
            x = block(x)
        return x
