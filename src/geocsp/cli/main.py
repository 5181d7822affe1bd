"""The ``geocsp`` command group and its single error boundary.

Each top-level command lives in a module of this package and is imported only when it
runs, so ``geocsp --help`` needs neither torch nor matplotlib and the command modules
import the library at module level. :data:`COMMANDS` is the table of top-level commands;
``tests/cli/test_main.py`` checks it against the modules.

Exit codes: 0 success; 1 a bug (traceback shown); 2 bad input or environment (one stderr
line ``geocsp: error: <file or option>: <what was expected>``, or click's usage error);
130 interrupted. ``GEOCSP_DEBUG=1`` re-raises every error with its traceback.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import click

from geocsp.errors import GeocspError

COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("geocsp.cli.bench", "Benchmarks that print a table and write results files."),
    "convert": ("geocsp.cli.convert", "Convert a peer's encoder checkpoint (SatCLIP, SINR, CSP) to geocsp."),
    "data": ("geocsp.cli.data", "Create, import and check geocsp datasets (docs/dataset.md)."),
    "demo": ("geocsp.cli.demo", "The paper's Table 1 on GeoWorld."),
    "embed": ("geocsp.cli.train", "Location embeddings e(x) for a CSV/Parquet of lon, lat."),
    "encoders": ("geocsp.cli.encoders", "List the position encoders."),
    "export": ("geocsp.cli.export", "Export a prior or location encoder as ONNX (docs/export.md)."),
    "evaluate": ("geocsp.cli.train", "Image / location / fused metrics of a fine-tuned RUN."),
    "features": ("geocsp.cli.features", "Image folders -> feature datasets, with local weights only."),
    "finetune": ("geocsp.cli.train", "Fine-tune the location prior P(y|x) on a label subset."),
    "map": ("geocsp.cli.maps", "Map the predicted range of a species (or richness)."),
    "predict": ("geocsp.cli.train", "Top-k classes for a dataset split or a CSV/Parquet of points."),
    "pretrain": ("geocsp.cli.train", "CSP pre-training of a location encoder."),
    "serve": ("geocsp.cli.serve", "Serve an interactive, offline map of a run (docs/map.md)."),
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


DECODE_ERRORS = {
    ("json.decoder", "JSONDecodeError"), ("yaml", "YAMLError"), ("yaml.error", "YAMLError"),
    ("pandas.errors", "ParserError"), ("pandas.errors", "EmptyDataError"),
    ("pyarrow.lib", "ArrowInvalid"), ("safetensors._safetensors_rust", "SafetensorError"),
    ("zipfile", "BadZipFile"), ("zlib", "error"), ("builtins", "EOFError"),
}
"""(module, class) of third-party "cannot decode this file" errors the boundary reports as
bad input (matched along the exception's MRO, so nothing is imported to check them)."""

OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
"""errno values that mean the output could not be written (named after ``--out``)."""


def _one_line(text: str) -> str:
    """``text`` with its lines joined by ``; `` (a message is always one line)."""
    return "; ".join(part.strip() for part in text.splitlines() if part.strip()) or text.strip()


def _file_in_traceback(tb: TracebackType | None) -> str | None:
    """The innermost path a geocsp frame was working on (a ``Path`` local), if any.

    Args:
        tb: the traceback of the error.

    Returns:
        The path as a string, or None.
    """
    frames = [f for f, _ in traceback.walk_tb(tb) if f.f_globals.get("__name__", "").startswith("geocsp.")]
    for frame in reversed(frames):
        for name in ("path", "p", "tmp", "file", "src", "directory", "out"):
            value = frame.f_locals.get(name)
            if isinstance(value, Path):
                return str(value)
    return None


def _is_decode_error(e: BaseException) -> bool:
    """Whether ``e`` is a "this file cannot be decoded" error of a parser library."""
    return isinstance(e, UnicodeError) or any(
        (c.__module__, c.__name__) in DECODE_ERRORS for c in type(e).__mro__)


def user_error_message(e: BaseException) -> str | None:
    """The one-line message for an error caused by the input or environment.

    An OS error that names no file is attributed to the innermost geocsp frame's path, or
    for a full disk to the command's ``--out``.

    Args:
        e: the exception that ended the command.

    Returns:
        ``<file or option>: <what was expected>``, or None when ``e`` is a bug.
    """
    if isinstance(e, GeocspError):
        return _one_line(str(e))
    where = _file_in_traceback(e.__traceback__)
    if isinstance(e, OSError) and not _is_decode_error(e):
        what = e.strerror or _one_line(str(e)) or type(e).__name__
        name = e.filename
        if name is None and e.errno in OUTPUT_FULL:
            out = _out_option(e.__traceback__)
            name = f"--out {out}" if out else None
        name = name if name is not None else where
        names = [str(n) for n in (name, e.filename2) if n is not None]
        return f"{' -> '.join(names)}: {what}" if names else what
    if _is_decode_error(e):
        kind = "unexpected end of file" if isinstance(e, EOFError) else f"cannot decode ({_one_line(str(e))})"
        return f"{where}: {kind}" if where else f"input file: {kind}"
    if isinstance(e, RecursionError):
        return f"{where or 'input'}: too deeply nested to read"
    if isinstance(e, MemoryError):
        return f"{where or 'input'}: too large to read into memory"
    if isinstance(e, RuntimeError) and "Error(s) in loading state_dict" in str(e):
        return f"{where or 'checkpoint'}: weights do not fit its config ({_one_line(str(e))})"
    return None


def _out_option(tb: TracebackType | None) -> str | None:
    """The ``--out`` value of the innermost click command in the traceback, if it has one."""
    contexts = [f.f_locals["ctx"] for f, _ in traceback.walk_tb(tb)
                if isinstance(f.f_locals.get("ctx"), click.Context)]
    out = contexts[-1].params.get("out") if contexts else None
    return str(out) if out is not None else None


class OneLineUsageError(click.UsageError):
    """A click usage error (missing argument, bad option value, unknown command) shown as one line.

    ``geocsp: error: <click's message> (see '<command> --help')`` on stderr, exit status 2,
    instead of click's three lines (``Usage:``, ``Try ...``, ``Error: ...``).
    """

    @classmethod
    def of(cls, e: click.UsageError) -> click.UsageError:
        """The same error (message, context, exit code) with the one-line display.

        A group called without a command keeps click's help page (``NoArgsIsHelpError``).
        """
        if isinstance(e, (cls, getattr(click.exceptions, "NoArgsIsHelpError", cls))):
            return e
        one = cls(e.format_message(), e.ctx)
        one.exit_code = e.exit_code
        return one

    def show(self, file: Any = None) -> None:
        """Write the one line to stderr (or ``file``)."""
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"geocsp: error: {_one_line(self.format_message())}{hint}", file=file, err=True)


class GeocspGroup(click.Group):
    """The top-level group: commands loaded on use, and the one error boundary.

    An error caused by the input or the environment (:class:`~geocsp.errors.GeocspError`,
    ``OSError``, a file that cannot be decoded, input too deep or too large, checkpoint
    weights that do not fit) becomes one stderr line ``geocsp: error: ...`` and exit
    status 2, with no traceback, and so does a usage error (:class:`OneLineUsageError`); Ctrl-C is ``geocsp: interrupted`` and status 130; any
    other exception is a bug and keeps its traceback (status 1).
    """

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        """Parse the top-level options; a usage error is shown as one line."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            raise OneLineUsageError.of(e) from None

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
        """Run the command behind the error boundary (see the class docstring).

        Raises:
            click.exceptions.Exit: status 2 for bad input, 130 when interrupted.
        """
        debug = os.environ.get("GEOCSP_DEBUG", "") not in ("", "0")
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # a sub-command's arguments, or an unknown command
            raise OneLineUsageError.of(e) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("geocsp: interrupted", err=True)
            ctx.exit(130)
        except Exception as e:
            message = None if debug else user_error_message(e)
            if message is None:
                raise
            click.echo(f"geocsp: error: {message}", err=True)
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
