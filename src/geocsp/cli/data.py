"""``geocsp data``: check datasets and import data users already have.

Subcommands: ``check``, ``import-inat``, ``import-table``, ``add-probs``, ``split``, and ``make-world`` /
``from-photos`` (defined in ``geocsp.cli.data_world`` / ``geocsp.cli.data_photos``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from geocsp.cli.data_photos import from_photos_cmd
from geocsp.cli.data_world import make_world_cmd
from geocsp.cli.options import SEED, point_options
from geocsp.data.probs import add_probs
from geocsp.data.readers.inat import convert_inat
from geocsp.data.readers.table import import_table
from geocsp.data.resplit import split_dataset
from geocsp.data.validate import check_dataset, format_report
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
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at --out.")
def import_inat_cmd(src: Path, dataset: str, out: Path, overwrite: bool) -> None:
    """Convert the paper's iNat2018/fMoW release directory SRC to a geocsp dataset."""
    path = convert_inat(src, out, dataset, overwrite=overwrite)
    click.echo(f"wrote {path}")


@data.command("import-table")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output dataset directory.")
@click.option("--split", "split_name", default="train", show_default=True, help="Split name to write.")
@point_options
@click.option("--label-col", default=None, help="Column of class names.")
@click.option("--date-col", default=None, help="Column of ISO dates.")
@click.option("--image-col", default=None, help="Column of image paths or ids.")
@click.option("--feature-cols", default=None, help="Comma-separated numeric columns used as image features.")
@click.option("--features", "features_file", type=click.Path(path_type=Path), default=None,
              help="Row-aligned (N, D) float .npy image features.")
@click.option("--classes", "classes_file", type=click.Path(path_type=Path), default=None,
              help="Text file with one class name per line (the class order); default: sorted labels.")
@click.option("--split-col", default=None,
              help="Column naming each row's split (train, val, calib, unlabeled...); overrides --split.")
@click.option("--probs", "probs", multiple=True, metavar="KEY=PROBS.npy",
              help="Row-aligned (N, Q) image probabilities in the class order under KEY "
                   "(default or ratio{λ:.3f}, e.g. ratio0.050); repeatable.")
@click.option("--wrap-lon", is_flag=True, help="Wrap longitudes outside [-180, 180].")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at --out.")
def import_table_cmd(
    file: Path,
    out: Path,
    split_name: str,
    lon_col: str,
    lat_col: str,
    crs: str | None,
    label_col: str | None,
    date_col: str | None,
    image_col: str | None,
    feature_cols: str | None,
    features_file: Path | None,
    classes_file: Path | None,
    split_col: str | None,
    probs: tuple[str, ...],
    wrap_lon: bool,
    overwrite: bool,
) -> None:
    """Convert a table FILE (CSV, CSV.gz, Parquet, GeoParquet, GeoJSON points) to a geocsp dataset."""
    cols = [c.strip() for c in feature_cols.split(",") if c.strip()] if feature_cols else None
    path, rows, n_classes = import_table(
        file, out, split=split_name, split_col=split_col, probs=_key_files(probs), lon_col=lon_col,
        lat_col=lat_col, label_col=label_col, date_col=date_col, image_col=image_col, feature_cols=cols,
        features_file=features_file, classes_file=classes_file, wrap_lon=wrap_lon, crs=crs, overwrite=overwrite)
    click.echo(f"wrote {path} ({rows} rows, {n_classes} classes)")


def _key_files(values: tuple[str, ...]) -> dict[str, str]:
    """``("ratio0.050=p.npy", ...)`` -> ``{"ratio0.050": "p.npy"}``; malformed or repeated keys are refused."""
    out: dict[str, str] = {}
    for v in values:
        key, sep, file = v.partition("=")
        if not sep or not key or not file:
            raise click.BadParameter(f"expected KEY=PROBS.npy, got {v!r}", param_hint="--probs")
        if key in out:
            raise click.BadParameter(f"key {key!r} given twice", param_hint="--probs")
        out[key] = file
    return out


@data.command("add-probs")
@click.argument("directory", type=click.Path(path_type=Path))
@click.argument("probs_file", metavar="PROBS", type=click.Path(path_type=Path))
@click.option("--split", "split_name", required=True, help="Split the probabilities belong to.")
@click.option("--key", required=True, help="default (λ = 1) or ratio{λ:.3f}, e.g. ratio0.100.")
@click.option("--overwrite", is_flag=True, help="Replace a set already stored under --key.")
def add_probs_cmd(directory: Path, probs_file: Path, split_name: str, key: str, overwrite: bool) -> None:
    """Add row-aligned (N, Q) image probabilities PROBS to a split of dataset DIRECTORY, atomically."""
    path = add_probs(directory, split_name, key, probs_file, overwrite=overwrite)
    click.echo(f"wrote {path} ({split_name} probabilities '{key}')")

COMMANDS = [data]


@data.command("split")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output dataset directory.")
@click.option("--from", "source_split", default="train", show_default=True, help="Split to divide.")
@click.option("--hold-out", "hold_out", default="val", show_default=True,
              help="Name of the held-out split (the rest is train when it is val, else keeps its name).")
@click.option("--val-frac", "--frac", "val_frac", default=0.2, show_default=True,
              help="Fraction of rows held out.")
@click.option("--method", type=click.Choice(["random", "stratified", "spatial"]), default="random",
              show_default=True,
              help="random rows, a fraction of every class (stratified), or whole lon/lat blocks (spatial).")
@click.option("--block-deg", default=10.0, show_default=True, help="Block size for --method spatial.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at --out.")
def split_cmd(src: Path, out: Path, source_split: str, hold_out: str, val_frac: float, method: str,
              block_deg: float, seed: int, overwrite: bool) -> None:
    """Copy dataset SRC to OUT with a held-out split carved from one split.

    E.g. a `val` split from `train` (the default), or a `calib` split for the calibrated
    fusion from `val`: --from val --hold-out calib --method stratified (docs/protocol.md).
    """
    path = split_dataset(src, out, source_split=source_split, val_frac=val_frac, method=method,
                         block_deg=block_deg, seed=seed, overwrite=overwrite, hold_out=hold_out)
    splits = json.loads((Path(path) / "manifest.json").read_text())["splits"]
    kept, held = int(splits[source_split]["rows"]), int(splits[hold_out]["rows"])
    share = held / max(kept + held, 1)
    note = ("; stratified holds out at least one row of every class with two or more"
            if method == "stratified" and share > 1.5 * val_frac else "")
    click.echo(f"wrote {path} ({hold_out}: {held} rows = {share:.1%} of {source_split}'s {kept + held}, "
               f"asked {val_frac:.1%}{note})")


data.add_command(make_world_cmd)
data.add_command(from_photos_cmd)
