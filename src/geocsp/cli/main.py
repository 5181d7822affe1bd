"""The ``geocsp`` command group and its single error boundary.

Each top-level command lives in a module of this package and is imported only when it
runs, so ``geocsp --help`` needs neither torch nor matplotlib and the command modules
import the library at module level. :data:`COMMANDS` is the table of top-level commands;
``tests/cli/test_main.py`` checks it against the modules.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from geocsp.errors import GeocspError

COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("geocsp.cli.bench", "Benchmarks that print a table and write results files."),
    "data": ("geocsp.cli.data", "Create, import and check geocsp datasets (docs/dataset.md)."),
    "demo": ("geocsp.cli.demo", "The paper's Table 1 on GeoWorld."),
    "embed": ("geocsp.cli.train", "Location embeddings e(x) for a CSV/Parquet of lon, lat."),
    "encoders": ("geocsp.cli.encoders", "List the position encoders."),
    "evaluate": ("geocsp.cli.train", "Image / location / fused metrics of a fine-tuned RUN."),
    "features": ("geocsp.cli.features", "Image folders -> feature datasets, with local weights only."),
    "finetune": ("geocsp.cli.train", "Fine-tune the location prior P(y|x) on a label subset."),
    "map": ("geocsp.cli.sdm", "Map the predicted range of a species (or richness)."),
    "predict": ("geocsp.cli.train", "Top-k classes for a dataset split or a CSV/Parquet of points."),
    "pretrain": ("geocsp.cli.train", "CSP pre-training of a location encoder."),
    "sdm": ("geocsp.cli.sdm", "Species distribution models from presence-only records."),
}
"""Top-level command name -> (module defining it in its ``COMMANDS`` list, one-line help)."""


def load_command(name: str) -> click.Command:
    """Import the module of top-level command ``name`` and return the command.

    Args:
        name: a key of :data:`COMMANDS`.

    Returns:
        The click command or group.

    Raises:
        KeyError: when the module does not define that command (a bug in the table).
    """
    module = importlib.import_module(COMMANDS[name][0])
    for cmd in module.COMMANDS:
        if cmd.name == name:
            return cmd
    raise KeyError(f"{COMMANDS[name][0]} defines no command '{name}'")


class GeocspGroup(click.Group):
    """The top-level group: commands loaded on use, and the one error boundary.

    A :class:`~geocsp.errors.GeocspError` raised anywhere below becomes one stderr line
    ``geocsp: error: ...`` and exit status 2, with no traceback.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All top-level command names, sorted."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name`` (its module imported now), or None when unknown."""
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with the table's help, without importing their modules."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a GeocspError becomes one line and exit status 2."""
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


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    try:
        cli.main(args=argv, prog_name="geocsp", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
