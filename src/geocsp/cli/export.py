"""``geocsp export onnx``: a prior, position-only SDM or location encoder as ONNX (docs/export.md)."""

from __future__ import annotations

import click

import geocsp.sdm  # noqa: F401  (registers the SDM artifact kind: SDM runs are exportable)
from geocsp.cli.options import overwrite_option
from geocsp.training.export import CHECK_POINTS, DEFAULT_ATOL, export_onnx


@click.group("export")
def export() -> None:
    """Export models for use outside geocsp."""


@export.command("onnx")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The .onnx file; its .json sidecar is written beside it.")
@click.option("--atol", type=float, default=DEFAULT_ATOL, show_default=True,
              help="Largest accepted |ONNX Runtime - geocsp| on the check points.")
@click.option("--check-points", type=int, default=CHECK_POINTS, show_default=True,
              help="Random (lon, lat) points of the parity check.")
@overwrite_option("replace an existing --out file and its .json sidecar.")
def onnx_cmd(run_dir: str, out: str, atol: float, check_points: int, overwrite: bool) -> None:
    """RUN_DIR's fine-tuned prior or position-only SDM (lonlat [, doy] -> probs) or encoder (-> embedding) as ONNX."""
    meta = export_onnx(run_dir, out, atol=atol, check_points=check_points, overwrite=overwrite)
    click.echo(f"wrote {out} ({meta['kind']} -> {meta['output']['name']} {meta['output']['shape']}, "
               f"{meta['exporter']} exporter, max |ORT - geocsp| {meta['parity']['max_abs_diff']:.2g})")


COMMANDS = [export]
"""The top-level commands this module defines."""
