"""``geocsp bench``: the paper's tables and the probe of frozen location embeddings.

``paper``: Tables 1-3 on GeoWorld or any dataset (docs/demo.md, docs/protocol.md);
``probe``: frozen location embeddings probed on real targets (docs/probe.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from geocsp.cli.demo import run_and_print, table_options
from geocsp.cli.options import SEED, overwrite_option
from geocsp.experiments.probe_report import results_table
from geocsp.experiments.probe_run import (
    DEFAULT_ROWS,
    DEFAULT_TARGETS,
    quick,
    run_from_options,
    run_probe,
)


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
              help="Table 1 methods: img-only,sup-wrap,sup-grid,mse,csp-nce-bld,csp-mc-bld,kde (the default), "
                   "and distill,distill-grid,csp-distill,geoclip,csp-frozen,csp-partial,csp-es,sup-wrap-es,sup-cv,"
                   "csp-zeroshot,csp-proto,csp-zs-pool,kde,kde-labelled,kde-soft,kde-prior,sup-wrap-kde,csp-kde (docs/protocol.md).")
@click.option("--out", default=None, type=click.Path(), help="output directory (default geocsp-bench/tableN).")
def paper(table: str, out: str | None, **opts: Any) -> None:
    """One of the paper's Tables 1-3 on GeoWorld or on any dataset (--data; same files as geocsp demo).

    On a dataset that is not a GeoWorld the default preset is 'auto' (sized from the data,
    written to OUT/preset-auto.yaml). Reports both fusions (the paper's and the calibrated
    one) and paired per-seed differences with 95 % intervals. Rerunning reuses finished runs.
    """
    run_and_print(int(table), out or f"geocsp-bench/table{table}", **opts)


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@bench.command("probe")
@click.option("--encoder", "rows", multiple=True, metavar="[LABEL=]SPEC",
              help="a row besides the defaults: raw:NAME (a position encoding), a pretrained name "
                   "(geoclip) or a run / encoder directory (repeatable).")
@click.option("--no-defaults", is_flag=True,
              help=f"probe only the --encoder rows (defaults: {', '.join(DEFAULT_ROWS)}).")
@click.option("--targets", default=",".join(DEFAULT_TARGETS), show_default=True,
              help="comma-separated targets; precip and country need --reference.")
@click.option("--probes", default="linear,mlp", show_default=True, help="linear and/or mlp.")
@click.option("--reference", type=click.Path(exists=True, file_okay=False), default=None,
              help="a directory laid out like shared/data (reference_geo/...): precip, country.")
@click.option("--n", type=int, default=10_000, show_default=True, help="points per target.")
@click.option("--folds", type=int, default=5, show_default=True, help="K of both K-fold schemes.")
@click.option("--block-deg", type=float, default=15.0, show_default=True,
              help="side of the spatial CV blocks, degrees.")
@click.option("--epochs", type=int, default=20, show_default=True, help="MLP probe epochs.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="sampling, folds and MLP seed.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's).")
@click.option("--quick", "is_quick", is_flag=True, help="a seconds-long smoke run (300 points, 3 folds).")
@click.option("--out", default="geocsp-bench/probe.json", show_default=True, type=click.Path(dir_okay=False),
              help="results JSON (rewritten as results arrive).")
@click.option("--figure", default=None, type=click.Path(dir_okay=False),
              help="PCA → RGB map per encoder (default: OUT with suffix _pca.png).")
@overwrite_option("replace an existing --out / --figure.")
def probe(rows: tuple[str, ...], no_defaults: bool, targets: str, probes: str, threads: int | None,
          is_quick: bool, out: str, figure: str | None, overwrite: bool, **fields: Any) -> None:
    """Frozen location embeddings as features: linear / MLP probes, random vs spatial-block CV.

    Prints a table (accuracy % or R², mean ± sd over folds), writes OUT (JSON) and a figure.
    """
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    run = run_from_options(_names(targets), _names(probes), rows, defaults=not no_defaults, **fields)
    run = quick(run) if is_quick else run
    fig = figure or str(Path(out).with_name(Path(out).stem + "_pca.png"))
    res = run_probe(run, out, fig, progress=lambda line: click.echo(line, err=True), overwrite=overwrite)
    click.echo(results_table(res), nl=False)
    click.echo(f"results: {out}\nfigure: {fig}")


COMMANDS = [bench]
