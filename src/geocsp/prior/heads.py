"""Class heads of the location prior: logits from a location embedding e(x) (spec §5).

* ``linear`` (the paper's): ``T e(x)``, a bias-free ``nn.Linear`` (Q x d);
* ``cosine`` (issue 16, CSP zero-shot): ``s · cos(e(x), t_y) + b_y``, the similarity of the
  location embedding to a class prototype t_y in CSP's shared location-image space, with a
  scale s and a per-class offset b_y. :mod:`geocsp.training.prototypes` builds it from the
  projected image features of the labelled rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geocsp.errors import ConfigError


class CosineHead(nn.Module):
    """Logits ``s · cos(e, t_y) + b_y`` of a (B, d) embedding against Q prototypes.

    A zero prototype row gives cos = 0 (logit b_y at every location): the fallback of a
    class without a labelled row.

    Args:
        weight: (Q, d) prototypes t_y (any norm; they are normalised in :meth:`forward`).
        scale: s, a scalar (dimensionless; cos is in [-1, 1]).
        bias: (Q,) offsets b_y, or a scalar used for every class.

    Raises:
        ConfigError: on a weight that is not 2-D or a bias of another length.
    """

    def __init__(self, weight: Tensor, scale: Tensor | float, bias: Tensor | float) -> None:
        super().__init__()
        if weight.ndim != 2:
            raise ConfigError(f"cosine head: expected (Q, d) prototypes, got shape {tuple(weight.shape)}")
        q = weight.shape[0]
        b = torch.as_tensor(bias, dtype=torch.float32).reshape(-1)
        if b.numel() == 1:
            b = b.expand(q)
        if b.numel() != q:
            raise ConfigError(f"cosine head: expected {q} offsets, got {b.numel()}")
        self.weight = nn.Parameter(weight.detach().float().clone())
        self.scale = nn.Parameter(torch.as_tensor(scale, dtype=torch.float32).reshape(()).clone())
        self.bias = nn.Parameter(b.clone())

    def forward(self, emb: Tensor) -> Tensor:
        """(B, d) embeddings -> (B, Q) logits ``s · cos(e, t_y) + b_y``."""
        return self.scale * (F.normalize(emb, dim=-1) @ F.normalize(self.weight, dim=-1).T) + self.bias
