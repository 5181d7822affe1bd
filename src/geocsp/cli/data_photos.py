"""``geocsp data from-photos``: a folder of geotagged photos -> geocsp dataset table."""

from __future__ import annotations

from pathlib import Path

import click

from geocsp.data.readers.exif import import_photos


@click.command("from-photos")
@click.argument("photos_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset directory to write.")
@click.option("--split", default="train", show_default=True, help="Split name to write.")
@click.option("--no-recursive", is_flag=True, help="Only photos directly in PHOTOS_DIR.")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at --out.")
def from_photos_cmd(photos_dir: Path, out: Path, split: str, no_recursive: bool, overwrite: bool) -> None:
    """Read EXIF GPS of the photos in PHOTOS_DIR into a dataset (no features).

    Photos without GPS or with an invalid GPS position are kept with an empty location and
    listed; unreadable files are listed and left out. Sub-folder names become labels.
    """
    _, scan = import_photos(photos_dir, out, split=split, recursive=not no_recursive,
                            overwrite=overwrite)
    located = len(scan.table) - len(scan.no_gps) - len(scan.invalid_gps)
    click.echo(f"{len(scan.table)} photos -> {out} ({located} with GPS)")
    for rel in scan.no_gps:
        click.echo(f"no GPS: {rel}")
    for line in scan.invalid_gps:
        click.echo(f"invalid GPS: {line}")
    for rel in scan.unreadable:
        click.echo(f"unreadable: {rel}", err=True)
