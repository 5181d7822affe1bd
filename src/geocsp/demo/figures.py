"""Demo figures: range maps before / after fine-tuning, the embedding map, the bar chart.

* ``range_<class>.png`` -- the true range of one class (GeoWorld ground truth) next to
  P(y|x) of Sup. Only (grid), the pre-trained CSP encoder used zero-shot
  (score(x) = cos(e(x), W·mean F(I) of the class's labelled examples)) and the fine-tuned
  CSP prior, at the figure ratio; the labelled examples are drawn as dots. Each panel is
  scaled to [0, 1] (min-max), since densities, cosines and probabilities differ in units.
* ``embedding_pca.png`` -- the pre-trained CSP location embedding on a 1° land grid, first
  3 PCA components as RGB.
* ``table.png`` -- grouped bars of the table (fused top-1 mean ± std).

The class is chosen by a fixed rule (:func:`choose_class`), never by eye. Every function
receives its data (arrays, dataset paths, loaded models); :mod:`geocsp.demo.run` finds the
runs and loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geocsp.coords import lonlat_to_xyz
from geocsp.data.geoworld import true_range_density
from geocsp.demo.report import relative_gain
from geocsp.landmask import is_land_xyz
from geocsp.nets import LocationEncoder
from geocsp.prior import GeoPrior
from geocsp.prior.prior import grid_centres
from geocsp.viz import grid_extent, plot_bar_table, plot_embedding_pca, plot_range_maps, save_figure

MAP_RES_DEG = 1.0
RANGE_RES_DEG = 0.5


def choose_class(train_counts: np.ndarray, range_km: np.ndarray, weights: np.ndarray) -> int:
    """The figure's class: mid-abundance with a distinct, mid-sized range.

    Rule: among the classes whose train count lies in the middle third (33rd-67th
    percentile) and whose largest range component holds ≥ 60 % of the weight (one main
    population), take the one whose range scale is closest to the median range scale of
    all classes; ties -> the lowest index. Falls back to all classes when none qualifies.

    Args:
        train_counts: (Q,) labelled training rows per class.
        range_km: (Q,) range scale per class.
        weights: (Q, K) mixture weights of the range components.

    Returns:
        The class index.
    """
    counts = np.asarray(train_counts, dtype=np.float64)
    lo, hi = np.percentile(counts, [100 / 3, 200 / 3])
    ok = (counts >= lo) & (counts <= hi) & (np.asarray(weights).max(axis=1) >= 0.6)
    cand = np.flatnonzero(ok) if ok.any() else np.arange(len(counts))
    dist = np.abs(np.log(range_km[cand]) - np.log(np.median(range_km)))
    return int(cand[np.argmin(dist)])


def _bbox(points: np.ndarray, pad_deg: float = 15.0, min_w: float = 70.0, min_h: float = 45.0) -> tuple[float, float, float, float]:
    """(lon_min, lat_min, lon_max, lat_max) around the points, padded and at least min_w × min_h."""
    x0, y0 = points.min(axis=0) - pad_deg
    x1, y1 = points.max(axis=0) + pad_deg
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = max(x1 - x0, min_w), max(y1 - y0, min_h)
    x0, x1 = max(-180.0, cx - w / 2), min(180.0, cx + w / 2)
    y0, y1 = max(-90.0, cy - h / 2), min(90.0, cy + h / 2)
    return float(x0), float(y0), float(x1), float(y1)


def _grid(res: float, bbox: tuple[float, float, float, float] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid: lons (W,), lats (H,) and the (H*W, 2) cell centres, row-major north to south."""
    lons, lats = grid_centres(res, bbox)
    lon2, lat2 = np.meshgrid(lons, lats)
    return lons, lats, np.stack([lon2.ravel(), lat2.ravel()], axis=1)


def _scaled(v: np.ndarray) -> np.ndarray:
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def _encode(encoder: Any, pts: np.ndarray) -> np.ndarray:
    import torch

    encoder.eval()
    with torch.no_grad():
        out = [encoder(torch.as_tensor(pts[i : i + 65536], dtype=torch.float32)) for i in range(0, len(pts), 65536)]
    return torch.cat(out).numpy().astype(np.float64)


def zero_shot_scores(encoder: LocationEncoder, weight: np.ndarray, bias: np.ndarray | None,
                     feats: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """cos(e(x), W·mean(feats) + b) of a pre-trained CSP encoder.

    Args:
        encoder: the pre-trained location encoder e.
        weight: (d, D) the pre-trained image projection W.
        bias: (d,) its bias b, or None.
        feats: (n, D) image features of the class's labelled examples.
        pts: (N, 2) lon/lat degrees.

    Returns:
        (N,) cosine similarities in [-1, 1].
    """
    w = np.asarray(weight, np.float64)
    v = w @ np.asarray(feats, np.float64).mean(axis=0) + (np.asarray(bias, np.float64) if bias is not None else 0.0)
    e = _encode(encoder, pts)
    return (e @ v) / (np.linalg.norm(e, axis=1) * np.linalg.norm(v) + 1e-12)


Scorer = Callable[[np.ndarray], np.ndarray]
"""A map panel's values: (N, 2) lon/lat degrees -> (N,) scores."""


def prior_scorer(prior: GeoPrior, cls: int) -> Scorer:
    """P(y = cls | x) of a fine-tuned prior, as a :data:`Scorer`."""
    return lambda pts: prior.probs(pts)[:, cls].detach().numpy()


def zero_shot_scorer(encoder: LocationEncoder, weight: np.ndarray, bias: np.ndarray | None,
                     feats: np.ndarray) -> Scorer:
    """:func:`zero_shot_scores` of a pre-trained encoder, as a :data:`Scorer` (same arguments)."""
    return lambda pts: zero_shot_scores(encoder, weight, bias, feats, pts)


def range_figure(world: Path, cls: int, class_name: str, ratio: float, class_lonlat: np.ndarray,
                 labelled_lonlat: np.ndarray, panels: dict[str, Scorer], out: Path) -> Path:
    """The true range of ``cls`` next to learned maps (see module docstring).

    Args:
        world: the GeoWorld dataset directory (its ground truth gives the first panel).
        cls: the class index.
        class_name: its name (figure title).
        ratio: the label ratio of the runs shown (figure title).
        class_lonlat: (n, 2) lon/lat degrees of every train row of the class (map extent).
        labelled_lonlat: (m, 2) lon/lat degrees of its labelled examples (dots).
        panels: panel title -> :data:`Scorer`, in panel order.
        out: the PNG path.

    Returns:
        The written path.
    """
    lons, lats, pts = _grid(RANGE_RES_DEG, _bbox(class_lonlat))
    shape, extent = (len(lats), len(lons)), grid_extent(lats, lons)
    maps = [("true range (GeoWorld)", _scaled(true_range_density(world, cls, pts)).reshape(shape), extent)]
    for title, score in panels.items():
        maps.append((title, _scaled(np.asarray(score(pts), np.float64)).reshape(shape), extent))
    fig = plot_range_maps(maps, points=labelled_lonlat, cbar_label="score (panel min-max → [0, 1])")
    fig.suptitle(f"class {class_name}: {len(labelled_lonlat)} labelled examples at λ = {ratio:g} (dots)", fontsize=11)
    return save_figure(fig, out)


def embedding_figure(encoder: LocationEncoder, out: Path, title: str) -> Path:
    """Pre-trained location embedding on a 1° grid (ocean blank), 3 PCA components as RGB.

    Args:
        encoder: the pre-trained location encoder.
        out: the PNG path.
        title: the figure title.

    Returns:
        The written path.
    """
    lons, lats, pts = _grid(MAP_RES_DEG, None)
    emb = _encode(encoder, pts)
    emb[~is_land_xyz(lonlat_to_xyz(pts))] = np.nan
    fig = plot_embedding_pca(emb.reshape(len(lats), len(lons), -1), grid_extent(lats, lons), title=title)
    return save_figure(fig, out)


def bar_figure(rows: Sequence[dict[str, Any]], out: Path, title: str) -> Path:
    """Grouped bars of the table's fused top-1 (mean ± std over seeds).

    Args:
        rows: aggregated rows (:func:`geocsp.demo.report.aggregate`).
        out: the PNG path.
        title: the figure title.

    Returns:
        The written path.
    """
    return save_figure(plot_bar_table(rows, title=title), out)


def gain_figure(rows: Sequence[dict[str, Any]], baseline: str, out: Path) -> Path:
    """Relative fused top-1 gain (%) of every method over ``baseline``, grouped by ratio.

    Args:
        rows: aggregated rows (:func:`geocsp.demo.report.aggregate`).
        baseline: the method the gains are relative to.
        out: the PNG path.

    Returns:
        The written path.
    """
    from matplotlib.figure import Figure

    methods = [m for m in dict.fromkeys(str(r["method"]) for r in rows) if m != baseline]
    ratios = sorted({float(r["ratio"]) for r in rows})
    fig = Figure(figsize=(max(5.0, 1.6 * len(ratios) + 2.5), 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(ratios))
    for j, m in enumerate(methods):
        g = relative_gain(rows, m, baseline)
        ax.bar(x + (j - (len(methods) - 1) / 2) * width, [100 * g.get(q, np.nan) for q in ratios], width,
               label=m, color=f"C{j}")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(x, [f"{q * 100:g} %" for q in ratios])
    ax.set_xlabel("labelled fraction")
    ax.set_ylabel(f"relative top-1 gain (%)\nover {baseline}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, ncols=min(3, len(methods)), frameon=False)
    return save_figure(fig, out)
