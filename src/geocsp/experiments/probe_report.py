"""The probe benchmark's table (random vs spatial-block CV side by side) and PCA → RGB figure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geocsp.errors import ConfigError
from geocsp.viz import draw_outlines, pca_rgb, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CV_SHORT = {"random": "rand", "block": "block"}


def _cell(rec: Mapping[str, Any] | None) -> str:
    if rec is None:
        return "—"
    scale = 100.0 if rec["metric"] == "accuracy" else 1.0
    digits = 1 if rec["metric"] == "accuracy" else 3
    return f"{rec['mean'] * scale:.{digits}f} ± {rec['sd'] * scale:.{digits}f}"


def results_table(res: Mapping[str, Any]) -> str:
    """A Markdown table: one line per (row, probe), two columns (random | block) per target.

    Accuracy in %, R² as a fraction; each cell is mean ± sd over the folds.

    Args:
        res: the dict :func:`geocsp.experiments.probe_run.run_probe` returns.

    Returns:
        The table (with a header line per target giving its metric), newline-terminated.
    """
    targets = list(res["targets"])
    index = {(r["target"], r["row"], r["probe"], r["cv"]): r for r in res["results"]}
    lines_seen: list[tuple[str, str]] = []
    for r in res["results"]:
        if (r["row"], r["probe"]) not in lines_seen:
            lines_seen.append((r["row"], r["probe"]))
    head = ["encoder", "probe"]
    for t in targets:
        unit = "acc %" if res["targets"][t]["metric"] == "accuracy" else "R²"
        head += [f"{t} {unit} {CV_SHORT[cv]}" for cv in CV_SHORT]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, probe in lines_seen:
        cells = [row, probe] + [_cell(index.get((t, row, probe, cv))) for t in targets for cv in CV_SHORT]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def lonlat_grid(cell_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell centres of a global lon/lat grid, row 0 northernmost.

    Args:
        cell_deg: cell side in degrees (180 / cell_deg rounded to whole rows).

    Returns:
        (lons (W,), lats (H,), points (H·W, 2) lon/lat degrees, row-major).
    """
    h = max(2, round(180.0 / cell_deg))
    step = 180.0 / h
    lats = 90.0 - step * (np.arange(h) + 0.5)
    lons = -180.0 + step * (np.arange(2 * h) + 0.5)
    lon_g, lat_g = np.meshgrid(lons, lats)
    return lons, lats, np.stack([lon_g.ravel(), lat_g.ravel()], axis=1)


def pca_figure(featurizers: Mapping[str, Callable[[np.ndarray], torch.Tensor]], cell_deg: float,
               title: str = "frozen location embeddings: first 3 PCA components → RGB") -> Figure:
    """One global map per encoder: its embedding's first three PCA components as RGB.

    Args:
        featurizers: row label -> (N, 2) degrees -> (N, d) features, in panel order.
        cell_deg: grid cell size in degrees.
        title: the figure title.

    Returns:
        A Figure with one panel per row (3 columns).

    Raises:
        ConfigError: when there is no row.
    """
    from matplotlib.figure import Figure

    if not featurizers:
        raise ConfigError("featurizers: expected at least one row to draw")
    lons, lats, pts = lonlat_grid(cell_deg)
    ncols = min(3, len(featurizers))
    nrows = -(-len(featurizers) // ncols)
    fig = Figure(figsize=(4.6 * ncols, 2.5 * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (label, featurize) in zip(axes, featurizers.items(), strict=False):
        emb = featurize(pts).numpy().reshape(len(lats), len(lons), -1)
        ax.imshow(np.nan_to_num(pca_rgb(emb), nan=1.0), extent=(-180, 180, -90, 90), origin="upper",
                  interpolation="nearest")
        draw_outlines(ax, linewidth=0.4)
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(featurizers):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig


def write_figure(featurizers: Mapping[str, Callable[[np.ndarray], torch.Tensor]], cell_deg: float,
                 path: str | Path) -> Path:
    """Draw :func:`pca_figure` and write it atomically.

    Args:
        featurizers: row label -> feature map.
        cell_deg: grid cell size in degrees.
        path: the image file (PNG by suffix).

    Returns:
        ``path``.
    """
    return save_figure(pca_figure(featurizers, cell_deg), path, dpi=110)
