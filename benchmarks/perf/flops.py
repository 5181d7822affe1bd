"""FLOPs per step counted from the layer shapes (matrix products only).

Convention: a product (m, k) @ (k, n) costs 2·m·k·n FLOPs. A Linear layer's backward costs
one such product for the weight gradient and, when the input needs a gradient, one more for
the input gradient. Elementwise work (activations, LayerNorm, dropout, sigmoid/log of the
losses, softmax, Adam) is *not* counted: the roofline ratio therefore charges those
memory-bound operations to the step time, which is the point of the ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class Flops:
    """Forward and backward FLOPs of a piece of work."""

    forward: float
    backward: float = 0.0

    @property
    def total(self) -> float:
        return self.forward + self.backward

    def __add__(self, other: Flops) -> Flops:
        return Flops(self.forward + other.forward, self.backward + other.backward)


def matmul(m: int, k: int, n: int) -> float:
    """FLOPs of one (m, k) @ (k, n) product."""
    return 2.0 * m * k * n


def mlp(rows: int, widths: list[int], *, train: bool, input_grad: bool = False) -> Flops:
    """A chain of Linear layers ``widths[0] -> widths[1] -> ...`` applied to ``rows`` rows.

    Args:
        rows: number of input rows.
        widths: layer widths, input first.
        train: count the backward pass too.
        input_grad: whether the chain's input needs a gradient (False for a position
            encoding or frozen image features, so the first layer skips that product).
    """
    fwd = sum(matmul(rows, a, b) for a, b in pairwise(widths))
    if not train:
        return Flops(fwd)
    bwd = 0.0
    for i, (a, b) in enumerate(pairwise(widths)):
        bwd += matmul(rows, a, b)  # weight gradient
        if i > 0 or input_grad:
            bwd += matmul(rows, a, b)  # input gradient
    return Flops(fwd, bwd)


@dataclass(frozen=True)
class Shapes:
    """The model shapes of a run (paper-inat2018 defaults).

    Args:
        pe_dim: position-encoding width (grid, S = 32: 4·32).
        hidden: FFN hidden widths.
        dim: embedding width d.
        feat_dim: image-feature width D.
        num_classes: Q.
        num_negatives: C random negative locations per sample.
        simcse: whether the second dropout pass (L_D) runs.
    """

    pe_dim: int = 128
    hidden: tuple[int, ...] = (512,)
    dim: int = 256
    feat_dim: int = 2048
    num_classes: int = 8142
    num_negatives: int = 1
    simcse: bool = True

    @property
    def encoder_widths(self) -> list[int]:
        return [self.pe_dim, *self.hidden, self.dim]


def pretrain_step(s: Shapes, batch: int) -> Flops:
    """CSP-MC-BLD step: encoder over [x; x; negatives], W over the features, logits."""
    loc_rows = batch * (1 + int(s.simcse) + s.num_negatives)
    enc = mlp(loc_rows, s.encoder_widths, train=True)
    proj = mlp(batch, [s.feat_dim, s.dim], train=True)
    n_inbatch = 1 + int(s.simcse)  # L_B and L_D: (B, d) @ (d, B), grads for both sides
    logits = Flops(n_inbatch * matmul(batch, s.dim, batch), n_inbatch * 2 * matmul(batch, s.dim, batch))
    negl = Flops(matmul(batch, s.dim, s.num_negatives), 2 * matmul(batch, s.dim, s.num_negatives))
    return enc + proj + logits + negl


def finetune_step(s: Shapes, batch: int) -> Flops:
    """Full-loss step: encoder + head T over [x; background] (2B rows), encoder trained."""
    rows = 2 * batch
    return mlp(rows, s.encoder_widths, train=True) + mlp(rows, [s.dim, s.num_classes], train=True,
                                                          input_grad=True)


def evaluation(s: Shapes, rows: int) -> Flops:
    """P(y|x) for ``rows`` rows: encoder + head forward (the metrics add no products)."""
    return mlp(rows, [*s.encoder_widths, s.num_classes], train=False)


def dominant_matmul(item: str, s: Shapes, batch: int) -> tuple[int, int, int]:
    """(m, k, n) of the step's largest product, the size of its reference matmul."""
    if item == "pretrain":
        return batch, s.feat_dim, s.dim
    if item == "finetune":
        return 2 * batch, s.dim, s.num_classes
    return batch, s.dim, s.num_classes
