"""Networks (registry ``NETWORKS``) and the :class:`LocationEncoder` (PE + network).

Importing this package registers every network::

    >>> from geocsp.nets import create_network
    >>> create_network("ffn", 128, 256).output.linear.out_features
    256
"""

from __future__ import annotations

# Explicit imports register every network (no import-time discovery).
from geocsp.nets import fcnet, ffn, simple, siren  # noqa: F401
from geocsp.nets.base import NETWORKS, create_network, get_network_config, list_networks
from geocsp.nets.location_encoder import LocationEncoder, LocationEncoderConfig, load_pretrained

__all__ = [
    "NETWORKS",
    "LocationEncoder",
    "LocationEncoderConfig",
    "create_network",
    "get_network_config",
    "list_networks",
    "load_pretrained",
]
