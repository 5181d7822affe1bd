"""``geocsp data make-world``: generate the synthetic GeoWorld dataset (docs/geoworld.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from geocsp.cli.options import SEED
from geocsp.config import parse_override
from geocsp.data.dataset import read_manifest
from geocsp.data.geoworld import WORLD_PRESETS, make_world
from geocsp.errors import ConfigError


@click.command("make-world")
@click.option("--preset", default="default", show_default=True,
              help="GeoWorld preset: small, default or inat-scale.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="World seed.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output directory [default: the cache, ~/.cache/geocsp/geoworld/<preset>-seed<seed>].")
@click.option("--overwrite", is_flag=True, help="Regenerate even if the directory holds a world.")
@click.option("--set", "overrides", multiple=True, metavar="KNOB=VALUE",
              help="Override a GeoWorldConfig knob, e.g. --set num_classes=80 (repeatable).")
@click.option("--device", default="cpu", show_default=True, help="torch device for the image classifier.")
def make_world_cmd(preset: str, seed: int, out: Path | None, overwrite: bool,
                   overrides: tuple[str, ...], device: str) -> None:
    """Generate GeoWorld and print where it was written with a one-line summary."""
    WORLD_PRESETS.canonical(preset)  # unknown preset: one-line ConfigError before any work
    knobs = {}
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) != 1:
            raise ConfigError(f"--set {text}: expected KNOB=VALUE with a GeoWorldConfig knob name")
        knobs[keys[0]] = value
    t0 = time.perf_counter()
    path = make_world(preset, seed, out=out, overwrite=overwrite, device=device, **knobs)
    prov = _provenance(path)
    rows = ", ".join(f"{k} {v:,}" for k, v in prov.get("rows", {}).items())
    cfg = prov.get("geoworld", {}).get("config", {})
    click.echo(str(path))
    click.echo(
        f"GeoWorld {WORLD_PRESETS.canonical(preset)} seed {seed}: {cfg.get('num_classes')} classes, "
        f"{cfg.get('num_genera')} genera, D={cfg.get('feature_dim')}; {rows} ({time.perf_counter() - t0:.1f} s)"
    )


def _provenance(path: Path) -> dict[str, Any]:
    """The provenance block of a dataset's manifest."""
    return dict(read_manifest(path).get("provenance", {}))

