"""Position encoders: (B, 2) lon/lat degrees -> (B, out_dim) features.

Names are the papers'; the reference code's names are case-insensitive aliases::

    >>> from geocsp.encoders import create_encoder
    >>> enc = create_encoder("sphereC+", num_scales=16)
    >>> enc.out_dim
    96
"""

from __future__ import annotations

from typing import Any

from geocsp.config import from_dict

# Explicit imports register every encoder family, in the order of the docs table.
# isort: off
from geocsp.encoders import simple, space2vec, sphere2vec, fourier, harmonics  # noqa: F401

# isort: on
from geocsp.encoders.base import ENCODERS, PositionEncoder
from geocsp.encoders.time import encode_day_of_year

__all__ = [
    "ENCODERS",
    "PositionEncoder",
    "create_encoder",
    "encode_day_of_year",
    "encoders_markdown_table",
    "get_encoder_config",
    "list_encoders",
]


def list_encoders() -> list[str]:
    """Canonical encoder names, in registration order."""
    return ENCODERS.names()


def get_encoder_config(name: str, **overrides: Any) -> Any:
    """The config of encoder ``name``: its defaults updated with ``overrides``.

    Args:
        name: encoder name or alias (case-insensitive).
        **overrides: config fields; values are coerced to the field types.

    Raises:
        ConfigError: on an unknown encoder name, an unknown field or an invalid value.
    """
    entry = ENCODERS.get(name)
    return from_dict(entry.config_type(), overrides, where=f"encoder {entry.name}")


def create_encoder(name: str, **overrides: Any) -> PositionEncoder:
    """Build encoder ``name`` with its default config updated by ``overrides``.

    Args:
        name: encoder name or alias (case-insensitive), e.g. ``"grid"``, ``"spheregrid"``.
        **overrides: config fields, e.g. ``num_scales=16``.

    Returns:
        The encoder module (no trainable parameters).

    Raises:
        ConfigError: on an unknown encoder name, an unknown field or an invalid value.
    """
    entry = ENCODERS.get(name)
    encoder: PositionEncoder = entry.obj(get_encoder_config(entry.name, **overrides))
    return encoder


def encoders_markdown_table() -> str:
    """A Markdown table of every registered encoder, generated from the registry.

    Columns: name, aliases, default dim, default network, continuous at ±180°,
    λ-invariant at the poles, description, formula reference.
    """
    lines = [
        "| name | aliases | dim (defaults) | default network | continuous at ±180° "
        "| λ-invariant at poles | description | spec |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in ENCODERS:
        enc = create_encoder(entry.name)
        aliases = ", ".join(f"`{a}`" for a in entry.aliases) or "–"
        yes = {True: "yes", False: "no"}
        lines.append(
            f"| `{entry.name}` | {aliases} | {enc.out_dim} | {enc.default_network} "
            f"| {yes[enc.continuous_antimeridian]} | {yes[enc.pole_invariant]} "
            f"| {entry.description} | {enc.spec_ref} |"
        )
    return "\n".join(lines) + "\n"
