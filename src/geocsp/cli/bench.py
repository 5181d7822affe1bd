"""``geocsp bench paper``: the paper's tables on GeoWorld or any dataset (docs/demo.md, docs/protocol.md)."""

from __future__ import annotations

from typing import Any

import click

from geocsp.cli.demo import run_and_print, table_options


@click.group("bench")
def bench() -> None:
    """Benchmarks that print a table and write results files."""


@bench.command("paper")
@click.option("--table", type=click.Choice(["1", "2", "3"]), default="1", show_default=True,
              help="1: methods; 2: CSP-MC term ablation; 3: embedding dimension d.")
@table_options
@click.option("--data", default=None, type=click.Path(),
              help="a geocsp dataset directory (default: the preset's GeoWorld); see docs/protocol.md.")
@click.option("--methods", default=None,
              help="Table 1 methods: img-only,sup-wrap,sup-grid,mse,csp-nce-bld,csp-mc-bld (default all).")
@click.option("--out", default=None, type=click.Path(), help="output directory (default geocsp-bench/tableN).")
def paper(table: str, out: str | None, **opts: Any) -> None:
    """One of the paper's Tables 1-3 on GeoWorld or on any dataset (--data; same files as geocsp demo).

    On a dataset that is not a GeoWorld the default preset is 'auto' (sized from the data,
    written to OUT/preset-auto.yaml). Reports both fusions (the paper's and the calibrated
    one) and paired per-seed differences with 95 % intervals. Rerunning reuses finished runs.
    """
    run_and_print(int(table), out or f"geocsp-bench/table{table}", **opts)


COMMANDS = [bench]
