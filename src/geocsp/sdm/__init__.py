"""Species distribution models from presence-only records (issue 9; docs/sdm.md).

Modules: :mod:`config` (the frozen configs of a fit and of a run), :mod:`records`
(presences, background, covariates, dates and the rules for bad input), :mod:`model` (the
multi-species SDM and its run-dir format), :mod:`fit` (fitting on the shared training
step), :mod:`run` (a whole ``sdm fit`` run: inputs, fit, evaluation, run directory),
:mod:`cv` (spatial-block CV, presence/absence evaluation), :mod:`predict` (sites, grids),
:mod:`mapping` (range and richness maps), :mod:`covariates` (rasters, standardisation),
:mod:`metrics`, :mod:`baselines`, :mod:`dates`, :mod:`region`, :mod:`kde` (KDE of presences,
shrinkage toward it), :mod:`shrinkage` (choosing it by spatial-block CV), :mod:`categorical`
(one-hot covariates), :mod:`groups` (survey groups, presence/absence sites), :mod:`evaluate`
(``sdm evaluate``). rasterio (``geocsp[sdm]``)
is imported only when rasters are used. Importing the package registers the ``sdm``
artifact kind with :mod:`geocsp.checkpoints`.
"""

from geocsp.sdm.config import (
    LOSSES,
    BackgroundConfig,
    EvalConfig,
    FitOptions,
    ModelChoice,
    RecordsConfig,
    SDMFitConfig,
)
from geocsp.sdm.covariates import Standardizer, sample_raster, sample_rasters
from geocsp.sdm.evaluate import evaluate_run
from geocsp.sdm.fit import SDM_MODELS, fit_kde, fit_sdm
from geocsp.sdm.kde import SpeciesKDE
from geocsp.sdm.mapping import draw_map, range_map
from geocsp.sdm.model import SDM, FittedSDM, SDMConfig
from geocsp.sdm.predict import predict_file
from geocsp.sdm.records import InputSpec, Points, points_from_table, read_records, sample_background
from geocsp.sdm.region import Region, parse_region
from geocsp.sdm.run import fit_run

__all__ = [
    "LOSSES",
    "SDM",
    "SDM_MODELS",
    "BackgroundConfig",
    "EvalConfig",
    "FitOptions",
    "FittedSDM",
    "InputSpec",
    "ModelChoice",
    "Points",
    "RecordsConfig",
    "Region",
    "SDMConfig",
    "SDMFitConfig",
    "SpeciesKDE",
    "Standardizer",
    "draw_map",
    "evaluate_run",
    "fit_kde",
    "fit_run",
    "fit_sdm",
    "parse_region",
    "points_from_table",
    "predict_file",
    "range_map",
    "read_records",
    "sample_background",
    "sample_raster",
    "sample_rasters",
]
