"""``geocsp convert KIND FILE --out DIR``: a peer's location-encoder checkpoint -> a geocsp encoder."""

from __future__ import annotations

import click

from geocsp.cli.options import overwrite_option
from geocsp.pretrained import CONVERTERS, convert_checkpoint

_KINDS = "; ".join(f"{e.name}: {e.obj.peer} {e.obj.file}" for e in CONVERTERS)


@click.command("convert", epilog=f"KIND is one of: {_KINDS}. docs/pretrained.md has the details.")
@click.argument("kind")
@click.argument("file", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="encoder directory to write.")
@overwrite_option("replace an existing --out directory.")
def convert_cmd(kind: str, file: str, out: str, overwrite: bool) -> None:
    """Convert a peer's encoder checkpoint (SatCLIP, SINR, CSP) to geocsp.

    The file is read with torch.load(weights_only=True): tensors only, no code runs. The
    result is a geocsp encoder directory (model.safetensors + config.json) for embed,
    finetune --init and LocationEncoder.from_pretrained.
    """
    path = convert_checkpoint(kind, file, out, overwrite=overwrite)
    click.echo(f"wrote {path} ({CONVERTERS.get(kind).obj.peer} encoder from {file})")


COMMANDS = [convert_cmd]
