"""``geocsp bench paper --table 1|2|3``: the paper's tables on GeoWorld (docs/demo.md)."""

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
@click.option("--out", default=None, type=click.Path(), help="output directory (default geocsp-bench/tableN).")
def paper(table: str, out: str | None, **opts: Any) -> None:
    """One of the paper's Tables 1-3 reproduced on GeoWorld (same files as geocsp demo)."""
    run_and_print(int(table), out or f"geocsp-bench/table{table}", **opts)


COMMANDS = [bench]
