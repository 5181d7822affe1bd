"""Fault injection for the crash-safety tests: named write points that can kill the process.

A no-op in normal runs. :mod:`geocsp.io` places the points around every rename that publishes
an artifact; ``tests/training/test_faults.py`` sets ``$GEOCSP_FAULT`` in a child process.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "GEOCSP_FAULT"
"""``POINT[:N[:SIGNAL]]``: the N-th time (default 1st) :func:`fault_point` ``POINT`` is reached,
the process sends itself SIGNAL (default ``KILL``; ``INT``, ``TERM``...). Tests only."""
_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A named write point; a no-op unless ``$GEOCSP_FAULT`` names it (fault-injection tests).

    Points are ``<artifact>.before`` / ``<artifact>.after`` around the rename that publishes an
    artifact (``checkpoint``, ``latest``, ``subset``, ``metrics``, ``log``, ``artifact``) and
    ``<artifact>.aside`` between moving an old directory aside and renaming the new one in.

    Args:
        name: the point's name.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec or spec.split(":", 1)[0] != name:
        return
    parts = spec.split(":")
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] == int(parts[1] if len(parts) > 1 and parts[1] else 1):
        sig = parts[2].upper() if len(parts) > 2 else "KILL"
        os.kill(os.getpid(), getattr(signal, sig if sig.startswith("SIG") else f"SIG{sig}"))
