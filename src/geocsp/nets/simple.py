"""Small networks: a single linear map, and GeoCLIP's summed multi-branch MLP."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.nets.base import NETWORKS, check_positive


@dataclass(frozen=True)
class LinearConfig:
    """Config of :class:`LinearNet`.

    Args:
        bias: learn an additive bias.
    """

    bias: bool = True


@NETWORKS.register("linear", config=LinearConfig)
class LinearNet(nn.Module):
    """A single linear map from the position encoding to the embedding.

    Args:
        in_dim: input width.
        out_dim: output (embedding) width.
        config: network hyper-parameters.
    """

    def __init__(self, in_dim: int, out_dim: int, config: LinearConfig | None = None) -> None:
        super().__init__()
        self.config = config or LinearConfig()
        self.linear = nn.Linear(in_dim, out_dim, bias=self.config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_dim) features to (B, out_dim) embeddings."""
        return self.linear(x)


@dataclass(frozen=True)
class MultiBranchConfig:
    """Config of :class:`MultiBranch`.

    Args:
        branches: number of equal input chunks, one MLP each (the LocationEncoder fills it
            in from the position encoder's ``branches`` attribute when not given).
        hidden_dim: width of each branch's hidden layers.
        num_hidden_layers: Linear + ReLU layers per branch before the output Linear.
    """

    branches: int = 1
    hidden_dim: int = 1024
    num_hidden_layers: int = 3

    def __post_init__(self) -> None:
        check_positive("multibranch", branches=self.branches, hidden_dim=self.hidden_dim)
        if self.num_hidden_layers < 0:
            raise ConfigError(
                f"multibranch.num_hidden_layers must be >= 0, got {self.num_hidden_layers}"
            )


def _branch_mlp(in_dim: int, hidden_dim: int, num_hidden: int, out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_hidden):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


@NETWORKS.register("multibranch", config=MultiBranchConfig)
class MultiBranch(nn.Module):
    """GeoCLIP multi-branch MLP (Vivanco et al. 2023, arXiv 2309.16020), outputs summed.

    The input is split into ``branches`` equal chunks along the last axis (one chunk per
    random-Fourier-feature scale); chunk i goes through its own MLP
    ``(Linear -> ReLU) x num_hidden_layers -> Linear`` and the branch outputs are summed.

    Args:
        in_dim: input width, divisible by ``config.branches``.
        out_dim: output (embedding) width.
        config: network hyper-parameters.

    Raises:
        ConfigError: when ``in_dim`` is not divisible by the number of branches.
    """

    def __init__(self, in_dim: int, out_dim: int, config: MultiBranchConfig | None = None) -> None:
        super().__init__()
        cfg = config or MultiBranchConfig()
        if in_dim % cfg.branches:
            raise ConfigError(
                f"multibranch: input dim {in_dim} is not divisible by branches={cfg.branches}"
            )
        self.config = cfg
        self.chunk = in_dim // cfg.branches
        self.branches = nn.ModuleList(
            _branch_mlp(self.chunk, cfg.hidden_dim, cfg.num_hidden_layers, out_dim)
            for _ in range(cfg.branches)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_dim) features to (B, out_dim) embeddings (sum over branches)."""
        chunks = x.split(self.chunk, dim=-1)
        out = self.branches[0](chunks[0])
        for branch, chunk in zip(self.branches[1:], chunks[1:], strict=True):
            out = out + branch(chunk)
        return out
