"""Space2Vec multi-layer feed-forward network (``MultiLayerFeedForwardNN``), spec §3.1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from geocsp.errors import ConfigError
from geocsp.nets.base import (
    NETWORKS,
    Dropout,
    check_activation,
    check_positive,
    check_probability,
    make_activation,
)


@dataclass(frozen=True)
class FFNConfig:
    """Config of :class:`FFN`.

    Args:
        hidden_dim: width k of the hidden layers (reference ``hidden_dim``).
        num_hidden_layers: number h of hidden layers; 0 gives a single in -> out layer.
        dropout: dropout rate p after every activation.
        activation: one of ``relu``, ``leakyrelu`` (slope 0.2), ``gelu``, ``sigmoid``, ``tanh``.
        use_layernorm: LayerNorm (eps 1e-5) after each hidden layer (reference ``use_layn``).
        skip_connection: residual add in hidden layers whose input and output widths agree.
        output_activation: apply activation and dropout after the output Linear too, as the
            reference code does (spec §3.1); False gives a plain linear output.
    """

    hidden_dim: int = 512
    num_hidden_layers: int = 1
    dropout: float = 0.5
    activation: str = "relu"
    use_layernorm: bool = True
    skip_connection: bool = True
    output_activation: bool = True

    def __post_init__(self) -> None:
        check_positive("ffn", hidden_dim=self.hidden_dim)
        if self.num_hidden_layers < 0:
            raise ConfigError(f"ffn.num_hidden_layers must be >= 0, got {self.num_hidden_layers}")
        check_probability("ffn", "dropout", self.dropout)
        check_activation(self.activation, "ffn")


class FFNLayer(nn.Module):
    """One Space2Vec ``SingleFeedForwardNN`` layer: y = LN?(skip?(Dropout(Act(Linear(x))))).

    The weight is Xavier-uniform initialised; the bias keeps PyTorch's default init.

    Args:
        in_dim: input width.
        out_dim: output width.
        dropout: dropout rate.
        activation: activation name, or None for no activation and no dropout.
        layernorm: apply LayerNorm(out_dim) last.
        skip: add the input (only honoured when ``in_dim == out_dim``).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dropout: float,
        activation: str | None,
        layernorm: bool,
        skip: bool,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        nn.init.xavier_uniform_(self.linear.weight)
        self.act = make_activation(activation) if activation is not None else nn.Identity()
        self.dropout = Dropout(dropout) if activation is not None else nn.Identity()
        self.skip = bool(skip and in_dim == out_dim)
        self.norm = nn.LayerNorm(out_dim) if layernorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_dim) to (B, out_dim)."""
        y = self.dropout(self.act(self.linear(x)))
        if self.skip:
            y = y + x
        return self.norm(y)


@NETWORKS.register("ffn", aliases=("MultiLayerFeedForwardNN",), config=FFNConfig)
class FFN(nn.Module):
    """Space2Vec feed-forward network (Mai et al. 2020, arXiv 2003.00824; spec §3.1).

    ``num_hidden_layers`` hidden layers ``Linear -> Act -> Dropout -> (skip) -> LayerNorm``
    followed by the output layer ``Linear -> Act -> Dropout`` (no LayerNorm, no skip). The
    output activation and dropout follow the reference code rather than its docstring; set
    ``output_activation=False`` for a plain linear output layer.

    Args:
        in_dim: input width (position-encoding dim plus extra features).
        out_dim: output (embedding) width d.
        config: network hyper-parameters.
    """

    def __init__(self, in_dim: int, out_dim: int, config: FFNConfig | None = None) -> None:
        super().__init__()
        cfg = config or FFNConfig()
        self.config = cfg
        act = cfg.activation
        layers = []
        width = in_dim
        for _ in range(cfg.num_hidden_layers):
            layers.append(
                FFNLayer(
                    width, cfg.hidden_dim, cfg.dropout, act, cfg.use_layernorm, cfg.skip_connection
                )
            )
            width = cfg.hidden_dim
        self.hidden = nn.ModuleList(layers)
        out_act = act if cfg.output_activation else None
        self.output = FFNLayer(width, out_dim, cfg.dropout, out_act, layernorm=False, skip=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_dim) features to (B, out_dim) embeddings."""
        for layer in self.hidden:
            x = layer(x)
        return self.output(x)
