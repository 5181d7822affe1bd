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

ADDED_SUBKEYS: dict[str, dict[str, Any]] = {"kde": {"class_prior": 0.0}}
"""Keys added to a section after runs with that section enabled were made, dropped at these defaults."""


def at_added_default(key: str, value: Any) -> bool:
    """Whether ``key`` is an :data:`ADDED_DEFAULTS` entry at its default (a section's missing keys count as default)."""
    if key not in ADDED_DEFAULTS:
        return False
    default = ADDED_DEFAULTS[key]
    if isinstance(default, dict):
        return isinstance(value, dict) and {**default, **value} == default
    return bool(value == default)


def without_added(data: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` without the keys in ``drop``, added keys at their default, and added sub-keys at theirs."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in drop or at_added_default(k, v):
            continue
        sub = ADDED_SUBKEYS.get(k)
        if sub and isinstance(v, dict):
            v = {sk: sv for sk, sv in v.items() if not (sk in sub and sv == sub[sk])}
        out[k] = v
    return out


def config_dict_for_compare(data: dict[str, Any]) -> dict[str, Any]:
    """A resolved config dict without :data:`RUNTIME_KEYS` and added keys at their default (decides resume)."""
    return without_added(data, RUNTIME_KEYS)


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """Dotted path and values of the first difference between two config dicts, or None.

    Args:
        a: the saved config (plain data).
        b: the new config.
        prefix: dotted path of ``a`` / ``b`` inside the whole config.

    Returns:
        ``"optim.lr: saved 0.001, now 0.01"``; lists and tuples with equal items are equal.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            sub = first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if sub is not None:
                return sub
        return None
    if a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)):
        return f"{prefix.rstrip('.')}: saved {a!r}, now {b!r}"
    return None
