"""The ``geocsp`` command group and its single error boundary.

Each subcommand lives in its own module of this package and exposes a ``COMMANDS`` list
of click commands. torch and matplotlib are imported inside command bodies so that
``geocsp --help`` stays instant.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from geocsp.errors import GeocspError

# One module per subcommand (or group of subcommands); each exposes COMMANDS.
_COMMAND_MODULES = (
    "encoders",
    "data",
    "train",
    "demo",
    "bench",
    "features",
    "sdm",
    "viz",
)


class GeocspGroup(click.Group):
    """click group whose invoke turns GeocspError into one stderr line and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeocspError as e:
            click.echo(f"geocsp: error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=GeocspGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="geocsp")
def cli() -> None:
    """geocsp: contrastive spatial pre-training of location encoders and geo-priors.

    Locations are (lon, lat) in degrees everywhere.
    """


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        modname = f"geocsp.cli.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        module = importlib.import_module(modname)
        for cmd in getattr(module, "COMMANDS", ()):
            cli.add_command(cmd)


_load_commands()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="geocsp", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
