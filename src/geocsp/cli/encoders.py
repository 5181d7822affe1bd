"""``geocsp encoders``: list the registered position encoders, or the pretrained encoders."""

from __future__ import annotations

import json
from typing import Any

import click

from geocsp.encoders import ENCODERS, create_encoder
from geocsp.pretrained import pretrained_rows


def encoder_rows() -> list[dict[str, Any]]:
    """One row per registered encoder, built from the ``ENCODERS`` registry at default settings.

    Returns:
        Dicts with ``name``, ``dim`` (output dim at default settings), ``description``,
        ``aliases`` and ``network`` (the default network).
    """
    rows = []
    for entry in ENCODERS:
        rows.append(
            {
                "name": entry.name,
                "dim": int(create_encoder(entry.name).out_dim),
                "description": entry.description,
                "aliases": list(entry.aliases),
                "network": entry.obj.default_network,
            }
        )
    return rows


def _table(rows: list[dict[str, Any]], head: tuple[str, ...] = ("name", "dim", "network", "description")) -> str:
    cells = [[str(r[k]) for k in head] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:-1])]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths), "-" * 11)]
    lines += [fmt.format(*c) for c in cells]
    return "\n".join(lines)


@click.command("encoders")
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {name, dim, description, ...}."
)
@click.option(
    "--pretrained", is_flag=True,
    help="List the pretrained encoders instead (model cards; docs/pretrained.md).",
)
def encoders(as_json: bool, pretrained: bool) -> None:
    """List the position encoders: name, output dim at default settings, description."""
    if pretrained:
        rows = pretrained_rows()
        head: tuple[str, ...] = ("name", "output_dim", "licence", "status", "description")
    else:
        rows = encoder_rows()
        head = ("name", "dim", "network", "description")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(_table(rows, head))


COMMANDS = [encoders]
