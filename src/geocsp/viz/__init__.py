"""Figures (matplotlib, imported lazily), rasters and the interactive map.

``raster`` writes GeoTIFF / NetCDF grids; ``webmap`` and ``server`` are the interactive
map's page and local server (docs/map.md).
"""

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
