"""Candidate architectures of the location prior, for its model selection (``finetune.select``).

Each candidate is a tuple of ``model.*`` overrides applied to the run's own fine-tuning config
(the same ``key.path=value`` form as ``--set`` and a ``bench paper`` method), so a candidate
keeps every field it does not name: ``grid-r5`` on the demo preset is its grid → FFN
(32 scales, 256 hidden, d = 128) with the finest timescale r_min raised from 0.1° to 5°.
:mod:`geocsp.training.select` cross-validates them on the run's labelled subset.
:class:`SelectConfig` holds the selection's settings (``finetune.select``).
"""

from __future__ import annotations

from dataclasses import dataclass

from geocsp._registry import Registry
from geocsp.errors import ConfigError

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


@dataclass(frozen=True)
class SelectConfig:
    """Model selection of the prior by K-fold cross-validation on the labelled subset.

    With candidates, fine-tuning first refits each candidate K times on the run's labelled
    subset without one fold and scores the held-out folds by their mean log P(y|x) of the
    true class (:mod:`geocsp.training.select`); the best candidate is then fine-tuned on the
    whole subset. Cost: ``len(candidates) × folds`` extra fine-tunings of ``epochs`` epochs.

    Args:
        candidates: ``MODEL_CANDIDATES`` names (``wrap``, ``grid-r1`` ...); empty = off (the
            run's own ``model``).
        folds: K >= 2 (fewer when the subset has fewer rows).
        epochs: epochs of each fold fit; 0 = the run's ``data.epochs``.
    """

    candidates: tuple[str, ...] = ()
    folds: int = 3
    epochs: int = 0

    def __post_init__(self) -> None:
        names = [MODEL_CANDIDATES.canonical(c) for c in self.candidates]  # unknown: "did you mean"
        if len(set(names)) != len(names):
            raise ConfigError(f"select.candidates: expected distinct names, got {list(self.candidates)}")
        if not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"select.folds must be an integer >= 2, got {self.folds!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"select.epochs must be an integer >= 0 (0 = data.epochs), got {self.epochs!r}")
