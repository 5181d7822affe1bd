"""Run a geocsp command in this process, as the shell would (shared by the example scripts)."""

from __future__ import annotations

import sys

from geocsp.cli.main import main


def geocsp(*args: object) -> None:
    """Print ``$ geocsp ARGS`` and run it; exit with its status when it fails (one error line)."""
    argv = [str(a) for a in args]
    print("$ geocsp " + " ".join(argv), flush=True)
    status = main(argv)
    if status:
        sys.exit(status)
