"""Candidate architectures of the location prior, for its model selection (``finetune.select``).

Each candidate is a tuple of ``model.*`` overrides applied to the run's own fine-tuning config
(the same ``key.path=value`` form as ``--set`` and a ``bench paper`` method), so a candidate
keeps every field it does not name: ``grid-r5`` on the demo preset is its grid → FFN
(32 scales, 256 hidden, d = 128) with the finest timescale r_min raised from 0.1° to 5°.
:mod:`geocsp.training.select` cross-validates them on the run's labelled subset.
"""

from __future__ import annotations

from geocsp._registry import Registry

MODEL_CANDIDATES: Registry[tuple[str, ...]] = Registry("model candidate")
"""Candidate priors by name: ``wrap``, ``grid-r<r_min°>``, ``theory-r<r>``, ``sphereC+-r<r>``."""

WRAP = ("model.encoder=wrap", "model.encoder_args={}", "model.network=fcnet", "model.network_args={}")
"""Sup. Only (wrap)'s prior: the 4 low-frequency wrap features into the residual FCNet."""

MODEL_CANDIDATES.register("wrap", description="wrap features -> FCNet (Sup. Only (wrap))")(WRAP)


def _multiscale(encoder: str, r_min_deg: float) -> tuple[str, ...]:
    """``encoder`` with the run's other encoder fields and network, finest timescale ``r_min_deg``."""
    return (f"model.encoder={encoder}", f"model.encoder_args.r_min_deg={r_min_deg:g}")


R_MIN_DEG = (0.1, 1.0, 5.0, 20.0)
"""The finest timescales (degrees) registered for each multi-scale encoder."""

for _encoder in ("grid", "theory", "sphereC+"):
    for _r in R_MIN_DEG:
        MODEL_CANDIDATES.register(
            f"{_encoder}-r{_r:g}",
            description=f"{_encoder} with r_min = {_r:g} deg (the run's other encoder fields and network)",
        )(_multiscale(_encoder, _r))
