"""Species distribution models from presence-only records (issue 9; docs/sdm.md).

Modules: :mod:`records` (presences, background, covariates, dates and the rules for bad
input), :mod:`model` (the multi-species SDM and its run-dir format), :mod:`fit` (training
loop), :mod:`cv` (spatial-block CV, presence/absence evaluation), :mod:`predict` (sites,
grids), :mod:`covariates` (rasters, standardisation), :mod:`metrics`, :mod:`baselines`,
:mod:`dates`, :mod:`region`. rasterio (``geocsp[sdm]``) is imported only when rasters are used.
"""

from geocsp.sdm.covariates import Standardizer, sample_raster, sample_rasters
from geocsp.sdm.fit import FitOptions, fit_sdm
from geocsp.sdm.model import SDM, FittedSDM, SDMConfig
from geocsp.sdm.records import InputSpec, Points, points_from_table, read_records, sample_background
from geocsp.sdm.region import Region, parse_region

__all__ = [
    "SDM",
    "FitOptions",
    "FittedSDM",
    "InputSpec",
    "Points",
    "Region",
    "SDMConfig",
    "Standardizer",
    "fit_sdm",
    "parse_region",
    "points_from_table",
    "read_records",
    "sample_background",
    "sample_raster",
    "sample_rasters",
]
