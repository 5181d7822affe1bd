"""Options and printers shared by several commands (one definition each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

DEVICE_HELP = "auto | cpu | cuda | cuda:N"

SEED = click.IntRange(0, 2**32 - 1)
"""The type of every ``--seed`` option: an integer in [0, 2^32) (numpy and torch both take it)."""


def device_option(default: str | None = "auto") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--device`` (``auto`` = CUDA when available, else CPU).

    Args:
        default: the default value (None: leave the config's value).

    Returns:
        A click option decorator.
    """
    return click.option("--device", default=default, show_default=default is not None, help=DEVICE_HELP)


def overwrite_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--overwrite``: an existing output is refused without it (nothing is silently replaced).

    Args:
        help_text: what it replaces.

    Returns:
        A click option decorator.
    """
    return click.option("--overwrite", is_flag=True, help=help_text)


def crs_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--crs EPSG:N``: the CRS of the input points, reprojected once to (lon, lat) degrees.

    Returns:
        A click option decorator (value: the CRS string, or None for degrees).
    """
    return click.option("--crs", default=None, metavar="EPSG:N",
                        help="CRS of the input points (e.g. EPSG:28355, metres), reprojected to lon/lat "
                             "degrees with pyproj; default: degrees (or a GeoParquet/GeoJSON file's own CRS).")


def point_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--lon-col``, ``--lat-col`` and ``--crs`` for a command that reads a table of points.

    Tables are CSV, CSV.gz, Parquet, GeoParquet or GeoJSON; the point geometry of the last two
    gives the location unless other columns are named (docs/dataset.md).

    Args:
        f: the command function (gets ``lon_col``, ``lat_col``, ``crs``).

    Returns:
        The function with the options attached.
    """
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--lon-col", default="lon", show_default=True,
                     help="column of longitudes in degrees (x with --crs); a GeoJSON/GeoParquet file's "
                          "point geometry when not given."),
        click.option("--lat-col", default="lat", show_default=True,
                     help="column of latitudes in degrees (y with --crs)."),
        crs_option(),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``pretrain`` and ``finetune`` (config precedence: docs/training.md).

    Args:
        f: the command function.

    Returns:
        The function with the options attached.
    """
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--data", "data", required=True, type=click.Path(), help="geocsp dataset directory."),
        click.option("--out", "out", required=True, type=click.Path(), help="run directory (rerun = resume)."),
        click.option("--preset", default=None, help="bundled preset, e.g. paper-inat2018."),
        click.option("--config", "config_file", default=None, type=click.Path(), help="YAML run config."),
        click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                     help="override one config value (repeatable)."),
        click.option("--epochs", type=int, default=None, help="data.epochs"),
        click.option("--batch-size", type=int, default=None, help="data.batch_size"),
        click.option("--seed", type=SEED, default=None, help="seed"),
        device_option(None),
        click.option("--quiet", is_flag=True, help="no progress bars."),
        overwrite_option("discard an existing run in --out."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


FLAG_KEYS = {"epochs": "data.epochs", "batch_size": "data.batch_size", "seed": "seed",
             "device": "device", "ratio": "ratio"}
"""Explicit flags -> the config key they set (they override ``--set``)."""


def flag_overrides(**flags: Any) -> list[str]:
    """``KEY=VALUE`` overrides for the explicit flags that were given.

    Args:
        **flags: the command's flag values (None = not given).

    Returns:
        Overrides in :func:`geocsp.config.apply_overrides` syntax.
    """
    out = [f"{FLAG_KEYS[k]}={v}" for k, v in flags.items() if k in FLAG_KEYS and v is not None]
    if flags.get("quiet"):
        out.append("quiet=true")
    return out


def parse_beta(value: str) -> float | str:
    """``--beta``: a number, or ``tune``.

    Raises:
        click.BadParameter: for anything else.
    """
    if value == "tune":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or 'tune', got {value!r}") from None


def echo_metrics(metrics: dict[str, Any]) -> None:
    """Print the image / location / fused lines of a metrics dict, then the fusion warning.

    ``fused`` is the paper's product, ``fused_cal`` the calibrated fusion (docs/fusion.md;
    without one, ``n/a`` and the one-line reason, ``fusion.why``); when the paper's fusion lowers top-1 on the calibration rows, one ``warning:`` line follows.

    Args:
        metrics: as returned by :func:`geocsp.training.evaluate`.
    """
    why = (metrics.get("fusion") or {}).get("why")
    for key, label in (("image", "image"), ("location", "location"), ("fused", "fused"),
                       ("fused_calibrated", "fused_cal")):
        m = metrics.get(key)
        if m is None and key == "fused_calibrated" and why:
            click.echo(f"{label:9s} n/a ({why})")
        elif m is None and key in metrics:
            click.echo(f"{label:9s} n/a (the split has no image-classifier probabilities)")
        elif m is not None:
            click.echo(f"{label:9s} top1 {m['top1']:.4f}  top5 {m['top5']:.4f}  mrr {m['mrr']:.4f}  n {m['n']}")
    warning = (metrics.get("fusion") or {}).get("warning")
    if warning:
        click.echo(f"geocsp: {warning}", err=True)
