"""GeoCLIP's released location encoder as a geocsp LocationEncoder (``geoclip``).

GeoCLIP (Vivanco Cepeda, Nayak & Shah, NeurIPS 2023, arXiv 2309.16020) encodes a location by
the Equal Earth projection, one Gaussian random-Fourier-feature branch per σ ∈ {2^0, 2^4, 2^8}
(256 frequencies, so 512 features per branch), one MLP per branch
(512 -> 1024 -> 1024 -> 1024 -> 512 with ReLU after each hidden layer) and the sum of the
branch outputs (not normalised). That is geocsp's ``geoclip`` position encoder with the
``multibranch`` network, so the conversion only renames tensors:

============================== ==========================================
GeoCLIP ``location_encoder``   geocsp ``LocationEncoder``
============================== ==========================================
``LocEnc{i}.capsule.0.b``      ``position.freqs[i]`` (256, 2), (x, y) order
``LocEnc{i}.capsule.1/3/5.*``  ``network.branches.{i}.0/2/4.*``
``LocEnc{i}.head.0.*``         ``network.branches.{i}.6.*``
============================== ==========================================

GeoCLIP takes (lat, lon) in degrees; the converted encoder takes geocsp's (lon, lat).
"""

from __future__ import annotations

import torch

from geocsp.errors import CheckpointError
from geocsp.nets.location_encoder import LocationEncoderConfig
from geocsp.pretrained.registry import PRETRAINED, ModelCard, PretrainedModel, StateDict

GEOCLIP_SIGMAS = (1.0, 16.0, 256.0)
"""GeoCLIP's RFF scales 2^0, 2^4, 2^8 (one branch each)."""
_LAYERS = (("capsule.1", 0), ("capsule.3", 2), ("capsule.5", 4), ("head.0", 6))
"""GeoCLIP Linear layer -> index in a geocsp ``multibranch`` branch (ReLUs in between)."""

GEOCLIP_CONFIG = LocationEncoderConfig(
    encoder="geoclip",
    encoder_args={"sigmas": GEOCLIP_SIGMAS, "num_features": 256},
    network="multibranch",
    network_args={"branches": len(GEOCLIP_SIGMAS), "hidden_dim": 1024, "num_hidden_layers": 3},
    dim=512,
)

GEOCLIP_CARD = ModelCard(
    source="https://github.com/VicenteVivan/geo-clip (Vivanco Cepeda et al., NeurIPS 2023)",
    training_data="MP-16: 4.7 M geotagged Flickr photos (GPS-image contrastive training)",
    licence="MIT",
    input_convention="(lat, lon) degrees in GeoCLIP; geocsp takes (lon, lat) degrees",
    output_dim=512,
    sha256="94b80ae3af89fca78539e129dd2929d321247f5ceeeb0a31bc2c31041a253394",
    package="geoclip",
    package_file="geoclip/model/weights/location_encoder_weights.pth",
    install="pip install geoclip --no-deps",
)


def geoclip_state_dict(state: StateDict, where: str) -> StateDict:
    """Rename GeoCLIP's location-encoder state dict into geocsp's ``LocationEncoder`` keys.

    Args:
        state: GeoCLIP's ``LocationEncoder.state_dict()`` (27 tensors).
        where: the file it was read from, for messages.

    Returns:
        ``position.freqs`` (3, 256, 2) and ``network.branches.{i}.{j}.weight|bias``.

    Raises:
        CheckpointError: when a GeoCLIP key is missing or an unexpected one is present.
    """
    n = len(GEOCLIP_SIGMAS)
    names = {f"LocEnc{i}.capsule.0.b": ("freqs", i, -1) for i in range(n)}
    for i in range(n):
        for src, dst in _LAYERS:
            for p in ("weight", "bias"):
                names[f"LocEnc{i}.{src}.{p}"] = (p, i, dst)
    missing = sorted(set(names) - set(state))
    extra = sorted(set(state) - set(names))
    if missing or extra:
        what = f"lacks '{missing[0]}'" if missing else f"has the unexpected key '{extra[0]}'"
        raise CheckpointError(f"{where}: not a GeoCLIP location-encoder state dict ({what})")
    out: StateDict = {"position.freqs": torch.stack([state[f"LocEnc{i}.capsule.0.b"] for i in range(n)])}
    for key, (p, i, j) in names.items():
        if p != "freqs":
            out[f"network.branches.{i}.{j}.{p}"] = state[key]
    return out


PRETRAINED.register(
    "geoclip",
    description="GeoCLIP's released location encoder (Equal Earth + 3 RFF branches + MLPs); 512 dims.",
)(PretrainedModel(card=GEOCLIP_CARD, config=GEOCLIP_CONFIG, convert=geoclip_state_dict))
