"""Figures: range maps, embedding maps, species maps and the results bar chart.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, never ``show()``); write it with :func:`save_figure`. matplotlib is imported inside
the functions. Grids are (H, W) arrays whose row 0 is the northernmost row (the layout of
:meth:`geocsp.prior.GeoPrior.predict_grid`); ``extent`` is ``(lon_min, lon_max, lat_min,
lat_max)`` in degrees, the outer edges of the grid (matplotlib's ``imshow`` order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geocsp.errors import ConfigError
from geocsp.io import atomic_path
from geocsp.landmask import land_cells
from geocsp.viz.coastlines import draw_outlines

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Extent = tuple[float, float, float, float]
OCEAN = "#dce6ee"
POINT_STYLE = {"s": 9, "c": "#e4572e", "edgecolors": "white", "linewidths": 0.3, "zorder": 4}


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` atomically; the format comes from the suffix (default PNG).

    Args:
        fig: the figure to write.
        path: destination file; its suffix picks the format.
        dpi: resolution of raster formats.

    Returns:
        ``path`` as a Path.
    """
    p = Path(path)
    fmt = p.suffix.lstrip(".").lower() or "png"
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return p


def grid_extent(lats: np.ndarray, lons: np.ndarray) -> Extent:
    """``(lon_min, lon_max, lat_min, lat_max)`` edges of a regular grid from its cell centres.

    Args:
        lats: (H,) centre latitudes in degrees (either order), H >= 2 or a 1-cell grid
            whose width is taken from ``lons``.
        lons: (W,) centre longitudes in degrees, W >= 2.

    Returns:
        ``(lon_min, lon_max, lat_min, lat_max)`` in degrees (matplotlib's imshow extent).

    >>> grid_extent(np.array([45.0, -45.0]), np.array([-135.0, -45.0, 45.0, 135.0]))
    (-180.0, 180.0, -90.0, 90.0)
    """
    dx = float(abs(lons[1] - lons[0])) if len(lons) > 1 else float(abs(lats[1] - lats[0]))
    dy = float(abs(lats[1] - lats[0])) if len(lats) > 1 else dx
    return (
        float(np.min(lons)) - dx / 2,
        float(np.max(lons)) + dx / 2,
        float(np.min(lats)) - dy / 2,
        float(np.max(lats)) + dy / 2,
    )


def _check_grid(
    grid: np.ndarray, extent: Sequence[float], ndim: int = 2, name: str = "grid"
) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != ndim:
        raise ConfigError(f"{name}: expected a {ndim}-d array, got shape {g.shape}")
    if len(extent) != 4 or not (extent[0] < extent[1] and extent[2] < extent[3]):
        raise ConfigError(
            f"extent: expected (lon_min, lon_max, lat_min, lat_max) with min < max, got {extent}"
        )
    return g


def _map_axes(ax: Any, extent: Sequence[float], borders: bool = False, labels: bool = True) -> None:
    """Limits, a sensible aspect (1 / cos of the mid-latitude), outlines and labels."""
    x0, x1, y0, y1 = extent
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    mid = math.radians((y0 + y1) / 2)
    ax.set_aspect(1.0 if y1 - y0 > 100 else 1.0 / max(math.cos(mid), 0.2))
    ax.set_facecolor(OCEAN)
    draw_outlines(ax, borders=borders)
    if labels:
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
    ax.tick_params(labelsize=7)


def _points(ax: Any, points: Any) -> None:
    if points is not None:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], **POINT_STYLE)


def _new_figure(
    ncols: int, extent: Sequence[float], panel_width: float = 4.6
) -> tuple[Figure, list[Any]]:
    from matplotlib.figure import Figure

    x0, x1, y0, y1 = extent
    height = max(1.8, min(panel_width * (y1 - y0) / (x1 - x0), 6.0)) + 0.9
    fig = Figure(figsize=(panel_width * ncols + 0.8, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def plot_range_maps(
    panels: Sequence[tuple[str, np.ndarray, Extent]],
    points: Any = None,
    cbar_label: str = "P(y|x)",
    cmap: str = "YlGnBu",
    vmax: float | None = None,
) -> Figure:
    """Side-by-side maps (e.g. true range vs learned P(y|x) before/after fine-tuning).

    Args:
        panels: (title, grid (H, W) values, extent) per panel; all share one colour scale.
        points: (N, 2) lon/lat degrees of records drawn on every panel, or None.
        cbar_label: label of the shared colour bar.
        cmap: matplotlib colour map name.
        vmax: top of the colour scale (default the largest finite value, at least 1e-6).

    Returns:
        A Figure with one axes per panel plus the colour bar's.

    Raises:
        ConfigError: on no panels, a grid that is not 2-d or a malformed extent.
    """
    if not panels:
        raise ConfigError("panels: expected at least one (title, grid, extent) panel")
    grids = [_check_grid(g, e, name=f"panel '{t}'") for t, g, e in panels]
    top = vmax if vmax is not None else max(1e-6, max(float(np.nanmax(g)) for g in grids))
    fig, axes = _new_figure(len(panels), panels[0][2])
    images = []
    for ax, (title, _, extent), g in zip(axes, panels, grids, strict=True):
        im = ax.imshow(
            g,
            extent=tuple(extent),
            origin="upper",
            cmap=cmap,
            vmin=0.0,
            vmax=top,
            interpolation="nearest",
            zorder=1,
        )
        _map_axes(ax, extent, labels=ax is axes[0])
        _points(ax, points)
        ax.set_title(title, fontsize=10)
        images.append(im)
    fig.colorbar(images[-1], ax=axes, shrink=0.85, label=cbar_label, pad=0.01)
    return fig


def pca_rgb(embeddings: np.ndarray) -> np.ndarray:
    """First three principal components of (H, W, d) embeddings as an (H, W, 3) RGB image.

    Each component is rescaled to [0, 1] (min-max); signs are fixed so the largest-|.|
    loading of each component is positive (deterministic colours). NaN cells stay NaN.

    Args:
        embeddings: (H, W, d) embeddings; NaN cells are ignored.

    Returns:
        (H, W, 3) float64 RGB values in [0, 1] (NaN where the input is).

    Raises:
        ConfigError: when the array is not (H, W, d) or has fewer than 2 valid cells.
    """
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 3:
        raise ConfigError(f"embeddings: expected an (H, W, d) array, got shape {e.shape}")
    flat = e.reshape(-1, e.shape[2])
    ok = np.isfinite(flat).all(axis=1)
    if ok.sum() < 2:
        raise ConfigError("embeddings: expected at least 2 finite cells for PCA")
    x = flat[ok] - flat[ok].mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:3]
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    proj = x @ comps.T
    if proj.shape[1] < 3:
        proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    rgb = np.full((flat.shape[0], 3), np.nan)
    rgb[ok] = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    return rgb.reshape(e.shape[0], e.shape[1], 3)


def plot_embedding_pca(
    embeddings: np.ndarray, extent: Extent, title: str = "location embedding (PCA → RGB)"
) -> Figure:
    """Map of a location embedding: its first 3 PCA components as RGB.

    Args:
        embeddings: (H, W, d) embeddings at grid-cell centres, row 0 northernmost.
        extent: (lon_min, lon_max, lat_min, lat_max) degrees.
        title: axes title.

    Returns:
        A Figure with one axes.

    Raises:
        ConfigError: on a malformed array or extent.
    """
    _check_grid(embeddings, extent, ndim=3, name="embeddings")
    rgb = np.nan_to_num(pca_rgb(embeddings), nan=1.0)
    fig, (ax,) = _new_figure(1, extent, panel_width=7.0)
    ax.imshow(rgb, extent=tuple(extent), origin="upper", interpolation="nearest", zorder=1)
    _map_axes(ax, extent)
    ax.set_title(title, fontsize=10)
    return fig


def plot_species_map(
    grid: np.ndarray,
    extent: Extent,
    points: Any = None,
    title: str = "",
    cbar_label: str = "predicted suitability",
    land_mask: bool | np.ndarray = True,
    borders: bool = True,
    cmap: str = "YlGn",
) -> Figure:
    """A predicted range (or richness) map, ocean masked, with outlines and records.

    Args:
        grid: (H, W) values at cell centres, row 0 northernmost.
        extent: (lon_min, lon_max, lat_min, lat_max) degrees.
        points: (N, 2) lon/lat degrees of presence records to overlay, or None.
        title: axes title.
        cbar_label: colour-bar label.
        land_mask: True hides ocean cells (:func:`geocsp.landmask.land_cells`, ``global_land_mask`` at the
            cell centres; its first use loads a 1 km global mask, several seconds and
            about 1 GB of memory); an (H, W) bool array (True = land) is used as given.
        borders: draw country borders as well as coastlines.
        cmap: matplotlib colour map name.

    Returns:
        A Figure with the map axes and the colour bar's.

    Raises:
        ConfigError: on a malformed grid or extent.
    """
    g = _check_grid(grid, extent).copy()
    if isinstance(land_mask, np.ndarray):
        if land_mask.shape != g.shape:
            raise ConfigError(
                f"land_mask: expected shape {g.shape} like the grid, got {land_mask.shape}"
            )
        g[~land_mask.astype(bool)] = np.nan
    elif land_mask:
        g[~land_cells(g.shape, extent)] = np.nan
    fig, (ax,) = _new_figure(1, extent, panel_width=7.0)
    im = ax.imshow(
        np.ma.masked_invalid(g),
        extent=tuple(extent),
        origin="upper",
        cmap=cmap,
        interpolation="nearest",
        zorder=1,
    )
    _map_axes(ax, extent, borders=borders)
    _points(ax, points)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.85, label=cbar_label, pad=0.01)
    return fig


def plot_bar_table(
    rows: Sequence[dict[str, Any]],
    ylabel: str = "fused top-1 accuracy",
    title: str = "",
) -> Figure:
    """Grouped bars of ``top1_mean`` ± ``top1_std``: one group per label ratio, one bar per method.

    Args:
        rows: dicts with ``method`` (str), ``ratio`` (label fraction in (0, 1]),
            ``top1_mean`` and ``top1_std`` (``std`` may be missing or NaN: no error bar).
        ylabel: y-axis label.
        title: axes title.

    Returns:
        A Figure with one axes.

    Raises:
        ConfigError: on no rows or a row missing a key.
    """
    if not rows:
        raise ConfigError("rows: expected at least one result row")
    for i, r in enumerate(rows):
        missing = {"method", "ratio", "top1_mean"} - set(r)
        if missing:
            raise ConfigError(f"rows[{i}]: missing key(s) {sorted(missing)}")
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    ratios = sorted({float(r["ratio"]) for r in rows})
    table = {(str(r["method"]), float(r["ratio"])): r for r in rows}
    from matplotlib.figure import Figure

    fig = Figure(
        figsize=(max(5.0, 1.1 * len(ratios) * max(1, len(methods)) ** 0.5 + 2.5), 3.8),
        layout="constrained",
    )
    ax = fig.subplots()
    width = 0.8 / len(methods)
    x = np.arange(len(ratios))
    for j, m in enumerate(methods):
        rs = [table.get((m, q), {}) for q in ratios]
        mean = [float(r.get("top1_mean", np.nan)) for r in rs]
        std = [float(r.get("top1_std", np.nan) or 0.0) for r in rs]
        ax.bar(
            x + (j - (len(methods) - 1) / 2) * width,
            mean,
            width,
            yerr=np.nan_to_num(std),
            capsize=2,
            label=m,
            color=_colour(j),
            error_kw={"elinewidth": 0.8},
        )
    ax.set_xticks(x, [f"{q * 100:g} %" for q in ratios])
    ax.set_xlabel("labelled fraction")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, ncols=min(3, len(methods)), loc="upper left", frameon=False)
    hi = np.nanmax([float(r["top1_mean"]) + float(r.get("top1_std", 0) or 0) for r in rows])
    # bars start at 0, so differences between methods are not exaggerated
    ax.set_ylim(0.0, 1.2 * hi if hi > 0 else 1.0)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def _colour(j: int) -> str:
    palette = (
        "#8c8c8c",
        "#4c72b0",
        "#55a868",
        "#c44e52",
        "#8172b2",
        "#ccb974",
        "#64b5cd",
        "#dd8452",
    )
    return palette[j % len(palette)]
