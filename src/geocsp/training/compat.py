"""Which parts of a run's config decide whether a run can be reused (resume, run hashes).

Keys added to :class:`~geocsp.training.config.FinetuneConfig` after runs were made are left
out while at their default (the earlier behaviour), so those runs stay reusable: resuming
compares configs without them, and :func:`geocsp.experiments.provenance.run_key` hashes
without them.
"""

from __future__ import annotations

from typing import Any

from geocsp.config import to_dict
from geocsp.prior.kde import KDEConfig

RUNTIME_KEYS = ("device", "quiet", "checkpoint_every", "keep_checkpoints")
"""Top-level keys that may differ when a run is resumed (they do not change results)."""

ADDED_DEFAULTS: dict[str, Any] = {"kde": to_dict(KDEConfig()), "fusion_criterion": "top1", "zeroshot_pool": False}
"""Sections and keys added after runs were made, ignored at these defaults (the earlier behaviour): earlier
runs stay reusable."""


def at_added_default(key: str, value: Any) -> bool:
    """Whether ``key`` is an :data:`ADDED_DEFAULTS` entry at its default (a section's missing keys count as default)."""
    if key not in ADDED_DEFAULTS:
        return False
    default = ADDED_DEFAULTS[key]
    if isinstance(default, dict):
        return isinstance(value, dict) and {**default, **value} == default
    return bool(value == default)


def config_dict_for_compare(data: dict[str, Any]) -> dict[str, Any]:
    """A resolved config dict without :data:`RUNTIME_KEYS` and added sections at their default (decides resume)."""
    return {k: v for k, v in data.items() if k not in RUNTIME_KEYS and not at_added_default(k, v)}
