"""Each figure function returns a Figure with the expected axes and writes a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geocsp.errors import ConfigError
from geocsp.viz import (
    grid_extent,
    land_cells,
    maps,
    pca_rgb,
    plot_bar_table,
    plot_embedding_pca,
    plot_range_maps,
    plot_species_map,
    save_figure,
)

GLOBE = (-180.0, 180.0, -90.0, 90.0)


def grid(h: int = 18, w: int = 36, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w))


def check_png(fig, path: Path) -> None:
    save_figure(fig, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left nothing behind


def test_range_maps(tmp_path: Path) -> None:
    panels = [(t, grid(seed=i), GLOBE) for i, t in enumerate(["true range", "before", "after"])]
    fig = plot_range_maps(panels, points=[[10.0, 45.0], [20.0, 50.0]])
    assert len(fig.axes) == 4  # 3 maps + shared colour bar
    assert [a.get_title() for a in fig.axes[:3]] == ["true range", "before", "after"]
    assert fig.axes[0].get_xlim() == (-180.0, 180.0)
    assert len(fig.axes[0].collections) >= 2  # coastlines + points
    check_png(fig, tmp_path / "range.png")


def test_embedding_pca(tmp_path: Path) -> None:
    emb = np.random.default_rng(0).normal(size=(18, 36, 16))
    fig = plot_embedding_pca(emb, GLOBE)
    assert len(fig.axes) == 1
    check_png(fig, tmp_path / "pca.png")


def test_pca_rgb_matches_covariance_eigenvectors() -> None:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(6, 7, 5)) * np.array([5.0, 3.0, 2.0, 0.1, 0.1])
    rgb = pca_rgb(emb)
    assert rgb.shape == (6, 7, 3) and rgb.min() == 0.0 and rgb.max() == 1.0
    x = emb.reshape(-1, 5) - emb.reshape(-1, 5).mean(0)
    _, vecs = np.linalg.eigh(x.T @ x)  # independent route: covariance eigenvectors
    top = x @ vecs[:, ::-1][:, :3]
    for c in range(3):
        r = rgb.reshape(-1, 3)[:, c]
        assert abs(np.corrcoef(r, top[:, c])[0, 1]) > 0.999999
    emb[0, 0] = np.nan
    assert np.isnan(pca_rgb(emb)[0, 0]).all() and np.isfinite(pca_rgb(emb)[1:]).all()


def test_species_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = (-90.0, -30.0, -35.0, 15.0)
    land = np.zeros((50, 60), bool)
    land[10:40, 20:50] = True
    fig = plot_species_map(
        grid(50, 60), ext, points=np.array([[-60.0, -5.0]]), title="Bradypus", land_mask=land
    )
    assert len(fig.axes) == 2
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(image.mask, ~land)  # ocean masked, land kept
    check_png(fig, tmp_path / "species.png")
    # land_mask=True asks land_cells (global_land_mask) for the grid's cells
    calls = []
    monkeypatch.setattr(
        maps, "land_cells", lambda shape, extent: calls.append((shape, extent)) or land
    )
    fig = plot_species_map(grid(50, 60), ext)
    assert (
        calls == [((50, 60), ext)] and fig.axes[0].images[0].get_array().mask.sum() == (~land).sum()
    )
    with pytest.raises(ConfigError, match=r"land_mask: expected shape \(50, 60\)"):
        plot_species_map(grid(50, 60), ext, land_mask=land[:3])


def test_grid_extent_matches_predict_grid_layout() -> None:
    from geocsp.prior.prior import grid_centres

    lons, lats = grid_centres(2.5, (-90.0, -35.0, -30.0, 15.0))
    assert grid_extent(lats, lons) == pytest.approx((-90.0, -30.0, -35.0, 15.0))


def test_land_cells() -> None:
    m = land_cells((180, 360), GLOBE)
    assert 0.25 < m.mean() < 0.35  # about 29 % of the surface is land
    assert m[45, 200] and not m[90, 150]  # (20.5E, 44.5N) land; (29.5W, 0.5S) Atlantic


def test_bar_table(tmp_path: Path) -> None:
    rows = [
        {"method": m, "ratio": r, "top1_mean": 0.3 + 0.1 * i + r / 5, "top1_std": 0.01}
        for i, m in enumerate(["Img. Only", "Sup. Only (grid)", "CSP-MC-BLD"])
        for r in (0.05, 0.1, 0.2, 1.0)
    ]
    fig = plot_bar_table(rows, title="fused top-1")
    (ax,) = fig.axes
    assert len(ax.patches) == 12
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5 %", "10 %", "20 %", "100 %"]
    check_png(fig, tmp_path / "bars.png")


def test_errors() -> None:
    with pytest.raises(ConfigError, match="panels: expected at least one"):
        plot_range_maps([])
    with pytest.raises(ConfigError, match=r"panel 'a': expected a 2-d array"):
        plot_range_maps([("a", np.zeros(3), GLOBE)])
    with pytest.raises(ConfigError, match="extent: expected"):
        plot_species_map(grid(), (10.0, 0.0, -10.0, 10.0))
    with pytest.raises(ConfigError, match=r"embeddings: expected a 3-d array"):
        plot_embedding_pca(np.zeros((3, 3)), GLOBE)
    with pytest.raises(ConfigError, match=r"rows\[0\]: missing key\(s\) \['top1_mean'\]"):
        plot_bar_table([{"method": "a", "ratio": 0.1}])
