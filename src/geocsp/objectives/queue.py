"""A FIFO queue of past locations (GeoCLIP-style), composed by the ``clip`` objective.

GeoCLIP (Vivanco Cepeda et al., NeurIPS 2023; spec peers §1) keeps the GPS coordinates
of past batches and **re-encodes** them with the current location encoder at every step,
appending them as extra negative columns of the image -> location logits. Unlike GeoCLIP,
the queue starts empty (no Gaussian-noise initialisation): only filled slots are returned.
Like lightly's ``MemoryBankModule``, it is updated only when gradients are enabled, so
validation passes under ``torch.no_grad()`` leave it untouched.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geocsp.errors import ConfigError


class LocationQueue(nn.Module):
    """FIFO ring buffer of the last ``size`` (lon, lat) locations, saved as buffers.

    Args:
        size: K, the capacity (number of past locations kept).

    Raises:
        ConfigError: if ``size < 1``.
    """

    lonlat: Tensor
    ptr: Tensor
    count: Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ConfigError(f"LocationQueue.size must be >= 1, got {size}")
        self.size = int(size)
        self.register_buffer("lonlat", torch.zeros(self.size, 2))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def contents(self) -> Tensor:
        """(k, 2) copy of the filled slots, degrees (k = min(#enqueued, size))."""
        return self.lonlat[: int(self.count)].clone()

    @torch.no_grad()
    def enqueue(self, lonlat: Tensor) -> None:
        """Append (n, 2) locations in degrees, overwriting the oldest when full."""
        x = lonlat.detach().reshape(-1, 2)[-self.size :].to(self.lonlat)
        n = x.shape[0]
        idx = (self.ptr + torch.arange(n, device=x.device)) % self.size
        self.lonlat[idx] = x
        self.ptr.copy_((self.ptr + n) % self.size)
        self.count.copy_(torch.clamp(self.count + n, max=self.size))

    def forward(self, lonlat: Tensor, update: bool | None = None) -> Tensor:
        """Return the queue as it was, then enqueue ``lonlat``.

        Args:
            lonlat: (n, 2) locations in degrees of the current (global) batch.
            update: enqueue them; default ``torch.is_grad_enabled()``.

        Returns:
            (k, 2) past locations in degrees (before this call's update).
        """
        bank = self.contents()
        if torch.is_grad_enabled() if update is None else update:
            self.enqueue(lonlat)
        return bank
