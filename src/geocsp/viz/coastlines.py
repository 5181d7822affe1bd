"""Bundled low-resolution coastlines and country borders (Natural Earth 1:110m).

``land_110m.npz`` is built by ``tools/make_coastlines.py`` from world-atlas 2.0.2
(ISC licence, Copyright 2013-2019 Michael Bostock; the full notice is stored in the
file under ``license``, see :func:`license_notice`); the geometry is Natural Earth,
public domain. Nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import numpy as np

from geocsp.errors import ConfigError, MissingFileError

DATA_FILE = "land_110m.npz"
KINDS = ("coast", "border")


@functools.lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    ref = resources.files("geocsp.viz").joinpath(DATA_FILE)
    if not ref.is_file():
        raise MissingFileError(f"{ref}: bundled outline file missing; reinstall geocsp")
    with ref.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_outlines(kind: str = "coast") -> list[np.ndarray]:
    """Polylines of the bundled outline set.

    Args:
        kind: ``"coast"`` (land outlines) or ``"border"`` (land borders between countries).

    Returns:
        A list of (n_i, 2) float32 arrays of longitude, latitude in degrees.

    Raises:
        ConfigError: on an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind: expected one of {KINDS}, got {kind!r}")
    a = _arrays()
    pts, off = a[f"{kind}_lonlat"], a[f"{kind}_offsets"]
    return [pts[off[i] : off[i + 1]] for i in range(len(off) - 1)]


def license_notice() -> str:
    """The attribution and ISC licence notice of the bundled outlines."""
    return str(_arrays()["license"])


def draw_outlines(
    ax: Any, borders: bool = False, color: str = "0.15", linewidth: float = 0.6
) -> None:
    """Draw coastlines (and optionally country borders) on a lon/lat matplotlib axes.

    Args:
        ax: a matplotlib ``Axes`` whose data coordinates are longitude, latitude degrees.
        borders: also draw land borders between countries (thinner, dashed-free grey).
        color: line colour.
        linewidth: coastline width in points (borders use 60 % of it).
    """
    from matplotlib.collections import LineCollection

    lim = ax.get_xlim(), ax.get_ylim()
    ax.add_collection(
        LineCollection(load_outlines("coast"), colors=color, linewidths=linewidth, zorder=3)
    )
    if borders:
        ax.add_collection(
            LineCollection(
                load_outlines("border"),
                colors=color,
                linewidths=0.6 * linewidth,
                alpha=0.6,
                zorder=3,
            )
        )
    ax.set_xlim(*lim[0])
    ax.set_ylim(*lim[1])
