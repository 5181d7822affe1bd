"""``geocsp data``: check datasets and import data users already have.

Subcommands: ``check``, ``import-inat``, ``import-table``; ``make-world`` and
``from-photos`` are registered from ``geocsp.cli.data_world`` / ``geocsp.cli.data_photos``
when those modules exist.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import click

from geocsp.errors import DatasetError


@click.group("data")
def data() -> None:
    """Create, import and check geocsp datasets (docs/dataset.md)."""


@data.command("check")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary and problems as JSON.")
def check_cmd(directory: Path, as_json: bool) -> None:
    """Validate DIRECTORY and print a summary; exit code 2 when problems are found.

    Every problem is one line `file:row:column: message` on stderr.
    """
    from geocsp.data.check import check_dataset, format_report

    report = check_dataset(directory)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "problems": report.problems, "summary": report.summary}, indent=2))
    else:
        click.echo(format_report(report))
    for line in report.problems:
        click.echo(line, err=True)
    if not report.ok:
        raise DatasetError(f"{directory}: {len(report.problems)} problem(s) found")


@data.command("import-inat")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--dataset", type=click.Choice(["inat2018", "fmow"]), default="inat2018", show_default=True,
              help="Which release layout SRC holds.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output dataset directory.")
def import_inat_cmd(src: Path, dataset: str, out: Path) -> None:
    """Convert the paper's iNat2018/fMoW release directory SRC to a geocsp dataset."""
    from geocsp.data.readers.inat import convert_inat

    path = convert_inat(src, out, dataset)
    click.echo(f"wrote {path}")


@data.command("import-table")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output dataset directory.")
@click.option("--split", "split_name", default="train", show_default=True, help="Split name to write.")
@click.option("--lon-col", default="lon", show_default=True, help="Column of longitudes (degrees).")
@click.option("--lat-col", default="lat", show_default=True, help="Column of latitudes (degrees).")
@click.option("--label-col", default=None, help="Column of class names.")
@click.option("--date-col", default=None, help="Column of ISO dates.")
@click.option("--image-col", default=None, help="Column of image paths or ids.")
@click.option("--feature-cols", default=None, help="Comma-separated numeric columns used as image features.")
@click.option("--features", "features_file", type=click.Path(path_type=Path), default=None,
              help="Row-aligned (N, D) float .npy image features.")
@click.option("--classes", "classes_file", type=click.Path(path_type=Path), default=None,
              help="Text file with one class name per line (the class order); default: sorted labels.")
@click.option("--wrap-lon", is_flag=True, help="Wrap longitudes outside [-180, 180].")
def import_table_cmd(
    file: Path,
    out: Path,
    split_name: str,
    lon_col: str,
    lat_col: str,
    label_col: str | None,
    date_col: str | None,
    image_col: str | None,
    feature_cols: str | None,
    features_file: Path | None,
    classes_file: Path | None,
    wrap_lon: bool,
) -> None:
    """Convert a CSV/Parquet FILE with user-named columns to a one-split geocsp dataset."""
    from geocsp.data._arrays import load_npy
    from geocsp.data.dataset import write_dataset
    from geocsp.data.readers.table import classes_from_labels, read_table

    cols = [c.strip() for c in feature_cols.split(",") if c.strip()] if feature_cols else None
    split = read_table(file, lon_col, lat_col, label_col, date_col, image_col, cols, wrap_lon=wrap_lon)
    if features_file is not None:
        if split.features is not None:
            raise DatasetError("give either --features or --feature-cols, not both")
        split.features = load_npy(features_file)
    classes = classes_from_labels(split, classes_file)
    provenance = {"reader": "geocsp.data.readers.table", "source": str(Path(file).resolve())}
    path = write_dataset(out, {split_name: split}, classes, provenance)
    click.echo(f"wrote {path} ({len(split.table)} rows, {len(classes)} classes)")


COMMANDS = [data]


@data.command("split")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output dataset directory.")
@click.option("--from", "source_split", default="train", show_default=True, help="Split to divide.")
@click.option("--val-frac", default=0.2, show_default=True, help="Fraction of rows held out as val.")
@click.option("--method", type=click.Choice(["random", "spatial"]), default="random", show_default=True,
              help="random rows, or whole lon/lat blocks (geographic generalisation).")
@click.option("--block-deg", default=10.0, show_default=True, help="Block size for --method spatial.")
@click.option("--seed", default=0, show_default=True)
def split_cmd(src: Path, out: Path, source_split: str, val_frac: float, method: str,
              block_deg: float, seed: int) -> None:
    """Copy dataset SRC to OUT with a held-out `val` split carved from one split."""
    from geocsp.data.resplit import split_dataset

    path = split_dataset(src, out, source_split=source_split, val_frac=val_frac, method=method,
                         block_deg=block_deg, seed=seed)
    click.echo(f"wrote {path}")


def _register_optional(module: str, attr: str) -> None:
    """Add a subcommand defined in another module, when that module exists."""
    if importlib.util.find_spec(module) is None:
        return
    try:
        cmd = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return
    data.add_command(cmd)


_register_optional("geocsp.cli.data_world", "make_world_cmd")
_register_optional("geocsp.cli.data_photos", "from_photos_cmd")
