"""``geocsp serve RUN``: the interactive, offline map of a run in the browser (docs/map.md).

Parses its flags, makes one library call (:func:`geocsp.sdm.web.serve_run`) and serves until
Ctrl-C. Bound to 127.0.0.1 (this machine only) unless ``--host`` says otherwise.
"""

from __future__ import annotations

import click

from geocsp.sdm.web import serve_run


@click.command("serve")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0 = any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 127.0.0.1 serves this machine only.")
@click.option("--region", default=None, help="min_lon,min_lat,max_lon,max_lat (default: raster extent / records / globe).")
@click.option("--res", "res_deg", type=float, default=None, help="Initial cell size in degrees (default: from the region).")
@click.option("--records", type=click.Path(dir_okay=False), default=None,
              help="CSV/Parquet of points (lon, lat, --species-col) shown as records (default: an SDM run's presences).")
@click.option("--species-col", default="species", show_default=True, help="Class column of --records.")
@click.option("--land-mask/--no-land-mask", default=True, show_default=True, help="Leave the ocean out of overlays.")
@click.option("--quiet", is_flag=True, help="Do not log requests.")
def serve_cmd(run_dir: str, port: int, host: str, region: str | None, res_deg: float | None, records: str | None,
              species_col: str, land_mask: bool, quiet: bool) -> None:
    """Serve an interactive map of an SDM or CSP prior run (works without internet)."""
    serve_run(run_dir, host, port, region=region, records=records, species_col=species_col, land_mask=land_mask,
              res_deg=res_deg, announce=click.echo, quiet=quiet)


COMMANDS = [serve_cmd]
"""The top-level commands this module defines."""
