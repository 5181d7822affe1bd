"""Demo figures: range maps before / after fine-tuning, the embedding map, the bar chart.

* ``range_<class>.png`` -- the true range of one class (GeoWorld ground truth) next to
  P(y|x) of Sup. Only (grid), the pre-trained CSP encoder used zero-shot
  (score(x) = cos(e(x), W·mean F(I) of the class's labelled examples)) and the fine-tuned
  CSP prior, at the figure ratio; the labelled examples are drawn as dots. Each panel is
  scaled to [0, 1] (min-max), since densities, cosines and probabilities differ in units.
* ``embedding_pca.png`` -- the pre-trained CSP location embedding on a 1° land grid, first
  3 PCA components as RGB.
* ``table.png`` -- grouped bars of the table (fused top-1 mean ± std).

The class is chosen by a fixed rule (:func:`choose_class`), never by eye.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
    """lons (W,), lats (H,) and the (H*W, 2) cell centres, row-major north to south."""
    from geocsp.prior.prior import grid_centres

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


def zero_shot_scores(pretrain_run: str | Path, feats: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """cos(e(x), W·mean(feats) + b) of a pre-trained CSP encoder.

    Args:
        pretrain_run: a ``geocsp pretrain`` run (``encoder/`` with ``projection.*``, linear W).
        feats: (n, D) image features of the class's labelled examples.
        pts: (N, 2) lon/lat degrees.

    Returns:
        (N,) cosine similarities in [-1, 1].
    """
    from geocsp.io import load_checkpoint_dir
    from geocsp.training import load_encoder

    tensors, _ = load_checkpoint_dir(Path(pretrain_run) / "encoder")
    w = tensors["projection.weight"].double().numpy()
    b = tensors.get("projection.bias")
    v = w @ np.asarray(feats, np.float64).mean(axis=0) + (b.double().numpy() if b is not None else 0.0)
    e = _encode(load_encoder(pretrain_run), pts)
    return (e @ v) / (np.linalg.norm(e, axis=1) * np.linalg.norm(v) + 1e-12)


def range_figure(world: Path, cls: int, class_name: str, ratio: float, panels_runs: dict[str, str],
                 pretrain_run: str, subset: np.ndarray, out: Path) -> Path:
    """The true range of ``cls`` next to the learned P(y|x) (see module docstring)."""
    from geocsp.data import load_dataset
    from geocsp.data.geoworld import true_range_density
    from geocsp.training import load_prior
    from geocsp.viz import grid_extent, plot_range_maps, save_figure

    train = load_dataset(world).split("train")
    mine = subset[train.labels[subset] == cls]
    bbox = _bbox(train.lonlat[train.labels == cls])
    lons, lats, pts = _grid(RANGE_RES_DEG, bbox)
    shape, extent = (len(lats), len(lons)), grid_extent(lats, lons)
    panels = [("true range (GeoWorld)", _scaled(true_range_density(world, cls, pts)).reshape(shape), extent)]
    for title, run in panels_runs.items():
        if title.endswith("zero-shot"):
            grid = zero_shot_scores(pretrain_run, np.asarray(train.features[mine]), pts)
        else:
            grid = load_prior(run).probs(pts)[:, cls].detach().numpy()
        panels.append((title, _scaled(np.asarray(grid, np.float64)).reshape(shape), extent))
    fig = plot_range_maps(panels, points=train.lonlat[mine], cbar_label="score (panel min-max → [0, 1])")
    fig.suptitle(f"class {class_name}: {len(mine)} labelled examples at λ = {ratio:g} (dots)", fontsize=11)
    return save_figure(fig, out)


def embedding_figure(pretrain_run: str, out: Path, title: str) -> Path:
    """Pre-trained location embedding on a 1° grid (ocean blank), 3 PCA components as RGB."""
    from geocsp.coords import lonlat_to_xyz
    from geocsp.data.geoworld_ranges import is_land
    from geocsp.training import load_encoder
    from geocsp.viz import grid_extent, plot_embedding_pca, save_figure

    lons, lats, pts = _grid(MAP_RES_DEG, None)
    emb = _encode(load_encoder(pretrain_run), pts)
    emb[~is_land(lonlat_to_xyz(pts))] = np.nan
    fig = plot_embedding_pca(emb.reshape(len(lats), len(lons), -1), grid_extent(lats, lons), title=title)
    return save_figure(fig, out)


def bar_figure(rows: Sequence[dict[str, Any]], out: Path, title: str) -> Path:
    """Grouped bars of the table's fused top-1 (mean ± std over seeds)."""
    from geocsp.viz import plot_bar_table, save_figure

    return save_figure(plot_bar_table(rows, title=title), out)


def gain_figure(rows: Sequence[dict[str, Any]], baseline: str, out: Path) -> Path:
    """Relative fused top-1 gain (%) of every method over ``baseline``, grouped by ratio."""
    from matplotlib.figure import Figure

    from geocsp.demo.report import relative_gain
    from geocsp.viz import save_figure

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


def _find(jobs: Sequence[Any], kind: str, method: str, seed: int, ratio: float | None = None) -> Any:
    for j in jobs:
        if j.kind == kind and j.method == method and j.seed == seed and (ratio is None or j.ratio == ratio):
            return j
    return None


def make_figures(out: Path, world: Path, jobs: Sequence[Any], rows: Sequence[dict[str, Any]],
                 settings: Any, table: int) -> dict[str, Path]:
    """Write the figures a table supports; returns ``{name: path}``.

    The range and embedding figures need Sup. Only (grid) and CSP-MC-BLD runs (Table 1);
    they use the first seed and the stored ratio closest to ``settings.figure_ratio``.
    """
    from geocsp.data import load_dataset
    from geocsp.data.geoworld import load_truth
    from geocsp.data.splits import load_or_make_subset
    from geocsp.demo.protocol import BASELINE, MAIN, TABLE_TITLES

    paths = {"bar": bar_figure(rows, out / "table.png", TABLE_TITLES[table]),
             "gain": gain_figure(rows, BASELINE, out / "gain.png")}
    seed = settings.seeds[0]
    ratio = min(settings.ratios, key=lambda q: (abs(q - settings.figure_ratio), q))
    pre, sup, csp = (_find(jobs, "pretrain", MAIN, seed), _find(jobs, "finetune", BASELINE, seed, ratio),
                     _find(jobs, "finetune", MAIN, seed, ratio))
    if pre is None or sup is None or csp is None:
        return paths
    paths["embedding"] = embedding_figure(pre.run_dir, out / "embedding_pca.png",
                                          f"pre-trained {MAIN} location embedding (PCA → RGB), seed {seed}")
    truth = load_truth(world)
    ds = load_dataset(world)
    cls = choose_class(truth["train_counts"], truth["range_km"], truth["weights"])
    labels = ds.split("train").labels
    subset = load_or_make_subset(csp.run_dir, labels, ratio, seed)
    runs = {f"{BASELINE}, fine-tuned": sup.run_dir, f"{MAIN} zero-shot": pre.run_dir,
            f"{MAIN}, fine-tuned": csp.run_dir}
    paths["range"] = range_figure(world, cls, ds.classes[cls], ratio, runs, pre.run_dir, subset,
                                  out / "range_maps.png")
    return paths
