"""Figures (matplotlib, imported lazily): range maps, embedding maps, species maps, bar charts."""

from geocsp.viz.coastlines import draw_outlines, license_notice, load_outlines
from geocsp.viz.maps import (
    grid_extent,
    land_cells,
    pca_rgb,
    plot_bar_table,
    plot_embedding_pca,
    plot_range_maps,
    plot_species_map,
    save_figure,
)

__all__ = [
    "draw_outlines",
    "grid_extent",
    "land_cells",
    "license_notice",
    "load_outlines",
    "pca_rgb",
    "plot_bar_table",
    "plot_embedding_pca",
    "plot_range_maps",
    "plot_species_map",
    "save_figure",
]
