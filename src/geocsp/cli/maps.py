"""``geocsp map``: the predicted range of a species (or richness) as an image, GeoTIFF or HTML map.

Parses its flags, makes the library calls (:func:`geocsp.sdm.draw_map` for ``--out``,
:func:`geocsp.sdm.web.write_html` for ``--html``; docs/sdm.md, docs/map.md) and prints the paths.
"""

from __future__ import annotations

import math

import click

from geocsp.data.tables import refuse_existing
from geocsp.errors import ConfigError
from geocsp.sdm import draw_map
from geocsp.sdm.web import check_top_k, write_html


@click.command("map")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--species", multiple=True,
              help="Species to map (required for --out unless --richness); repeat for one band each in a .tif / .nc.")
@click.option("--region", default=None, help="min_lon,min_lat,max_lon,max_lat (default: raster extent / records).")
@click.option("--date", default=None, help="Day of year as MM-DD (models fitted with --date-col).")
@click.option("--res", type=float, default=None, help="Grid cell size in degrees [default: 0.5; --html alone: from the region].")
@click.option("--richness", is_flag=True, help="Sum of scores over species (or count above --threshold).")
@click.option("--threshold", type=float, default=None, help="With --richness: count species with score >= T.")
@click.option("--land-mask/--no-land-mask", default=True, show_default=True)
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Image file (.png, .pdf, ...), GeoTIFF (.tif) or NetCDF (.nc): EPSG:4326, ocean = nodata; docs/export.md.")
@click.option("--html", default=None, type=click.Path(dir_okay=False),
              help="Also (or only) write the interactive map as one self-contained .html file (docs/map.md).")
@click.option("--top-k", type=int, default=5, show_default=True, help="--html: classes listed for a clicked cell.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out / --html.")
def map_cmd(run_dir: str, species: tuple[str, ...], region: str | None, date: str | None, res: float | None,
            richness: bool, threshold: float | None, land_mask: bool, out: str | None, html: str | None,
            top_k: int, overwrite: bool) -> None:
    """Map the predicted range of a species (or richness) from an SDM or a CSP prior run (image, GeoTIFF, HTML)."""
    if out is None and html is None:
        raise ConfigError("map: give --out (image / GeoTIFF) and/or --html (interactive map)")
    if threshold is not None and not (richness and math.isfinite(threshold)):  # checked before anything is written
        raise ConfigError(f"--threshold: expected a finite number with --richness, got {threshold}"
                          + ("" if richness else " without --richness"))
    if html is not None:
        check_top_k(top_k)
    for path, option in ((out, "--out"), (html, "--html")):
        if path is not None:
            refuse_existing(path, overwrite, option, file=True)
    if out is not None:
        draw_map(run_dir, out, species, region, date, 0.5 if res is None else res, richness, threshold, land_mask)
        click.echo(f"wrote {out}")
    if html is not None:
        write_html(run_dir, html, species, region, date, res, land_mask, top_k)
        click.echo(f"wrote {html}")


COMMANDS = [map_cmd]
"""The top-level commands this module defines."""
