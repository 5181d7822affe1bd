"""Frozen configs of an SDM fit: optimisation (:class:`FitOptions`) and a whole run (:class:`SDMFitConfig`).

:class:`SDMFitConfig` nests one section per concern -- ``records`` (the presence table and
its columns), ``background``, ``model`` (towers, encoder, initialisation), ``options``
(optimisation) and ``evaluation`` (CV, presence/absence sites) -- and is what
:func:`geocsp.sdm.run.fit_run` takes. Errors name the config field
(``background.sample must be >= 1 points, got -5``); the CLI maps field paths onto its flags.

The allowed losses (:data:`LOSSES`) are the registered presence-only fine-tuning losses of
:mod:`geocsp.objectives` with assume-negative defaults (those with a ``negatives`` option
set to ``"hard"``), grouped by loss family.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

from geocsp.errors import ConfigError
from geocsp.objectives import FINETUNE_LOSSES, list_finetune_losses
from geocsp.sdm.kde import parse_bandwidth, parse_shrink

INPUTS = ("position", "covariates", "both")
"""Values of the towers choice: position tower, covariate tower, or both."""

MODEL_KINDS = ("neural", "kde")
"""Registered SDM models (:data:`geocsp.sdm.fit.SDM_MODELS`)."""

SAMPLERS = ("land", "sphere")
"""Background location samplers: on land (GLOBE 1 km mask), or land and sea."""


def _presence_losses() -> tuple[str, ...]:
    """Registered losses with a ``negatives`` option defaulting to ``"hard"``, grouped by family."""
    entries = [FINETUNE_LOSSES.get(name) for name in list_finetune_losses()]
    chosen = []
    for entry in entries:
        defaults = {f.name: f.default for f in fields(entry.config or object) if f.default is not MISSING}
        if defaults.get("negatives") == "hard":
            chosen.append(entry)
    family: dict[object, int] = {}
    for entry in chosen:
        family.setdefault(entry.obj, len(family))
    return tuple(e.name for e in sorted(chosen, key=lambda e: family[e.obj]))


LOSSES = _presence_losses()
"""Presence-only losses an SDM accepts (``full``, ``an_full``, ``an_ssdl``, ``an_slds``)."""


MAX_BACKGROUND_SAMPLE = 10_000_000
"""Most background points ``--background-sample`` draws (Maxent's default is 10,000; each point
holds its covariates in memory and is scored every epoch)."""


def _at_least(owner: str, minimum: float, unit: str = "", **values: float | None) -> None:
    """Refuse a value below ``minimum`` (None values are skipped; NaN is not refused)."""
    for name, v in values.items():
        if v is not None and v < minimum:
            raise ConfigError(f"{owner}{name} must be >= {minimum:g}{unit}, got {v!r}")


@dataclass(frozen=True)
class FitOptions:
    """Optimisation settings.

    Args:
        loss: presence-only loss name (:data:`LOSSES`).
        epochs: passes over the presences.
        min_steps: at least this many optimiser steps (small data sets get more epochs).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: presences (and background points) per step.
        seed: seed of initialisation, batching and background draws.
        device: ``cpu``, ``cuda``, ``cuda:0``... or ``auto``.

    Raises:
        ConfigError: an unknown loss or a value out of range.
    """

    loss: str = "full"
    epochs: int = 30
    min_steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            # the message is matched by tests/sdm (it predates field-named messages)
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        _at_least("", 1, epochs=self.epochs, batch_size=self.batch_size)
        _at_least("", 0, weight_decay=self.weight_decay)
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be > 0 and finite, got {self.lr!r}")


@dataclass(frozen=True)
class RecordsConfig:
    """The presence table and how to read it.

    Args:
        path: CSV (``,`` ``;`` or tab) or Parquet table of records.
        species_col: species column; None = one species named after the file.
        presence_col: 0/1 column; rows with 0 are background points.
        lon_col: longitude column (degrees).
        lat_col: latitude column (degrees).
        covariates: table covariate columns.
        rasters: raster files sampled at the points (exclusive with ``covariates``).
        date_col: date column (ISO date, MM-DD or day of year), or None.
        region: ``min_lon,min_lat,max_lon,max_lat`` or a GeoJSON polygon file; records
            outside are dropped. None keeps all.
        min_records: species with fewer presences are dropped.
        crs: CRS of the lon/lat columns of records, background and sites (e.g.
            ``EPSG:28355``), reprojected to lon/lat degrees; None = already lon/lat.
        categorical: covariate columns holding category codes, one-hot encoded
            (:mod:`geocsp.sdm.categorical`).
        group_col: survey-group column; each species' groups are stored with the model.

    Raises:
        ConfigError: both covariates and rasters.
    """

    path: str
    species_col: str | None = None
    presence_col: str | None = None
    lon_col: str = "lon"
    lat_col: str = "lat"
    covariates: tuple[str, ...] = ()
    rasters: tuple[str, ...] = ()
    date_col: str | None = None
    region: str | None = None
    min_records: int = 2
    crs: str | None = None
    categorical: tuple[str, ...] = ()
    group_col: str | None = None

    def __post_init__(self) -> None:
        if self.group_col and not self.species_col:
            raise ConfigError("records.group_col needs records.species_col (the groups are per species)")
        if self.categorical and self.rasters:
            raise ConfigError("records.categorical needs table covariates, not records.rasters")
        if self.covariates and self.rasters:
            raise ConfigError("records.covariates and records.rasters are exclusive: use table columns or rasters, not both")


@dataclass(frozen=True)
class BackgroundConfig:
    """Where background points come from (any combination; at least one source overall).

    Args:
        path: background table (lon/lat [+ covariates]), or None.
        sample: sample this many points uniformly in area inside the region (at most
            :data:`MAX_BACKGROUND_SAMPLE`), or None.
        sampler: ``land`` or ``sphere`` (land and sea) for ``sample``.

    Raises:
        ConfigError: ``sample`` < 1 or above :data:`MAX_BACKGROUND_SAMPLE`, or an unknown sampler.
    """

    path: str | None = None
    sample: int | None = None
    sampler: str = "land"

    def __post_init__(self) -> None:
        _at_least("background.", 1, " points", sample=self.sample)
        if self.sample is not None and self.sample > MAX_BACKGROUND_SAMPLE:
            raise ConfigError(f"background.sample must be <= {MAX_BACKGROUND_SAMPLE:,} points, got {self.sample:,}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"background.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")


@dataclass(frozen=True)
class ModelChoice:
    """Which towers, which position encoder, and where its weights start.

    Args:
        inputs: ``position``, ``covariates`` or ``both``; None = both with covariates,
            else position.
        encoder: position encoder name; None = the default ``sphereC+`` (8 scales from 0.1°).
        init: pre-trained encoder directory (or pre-train / fine-tune run) for the
            position tower, or None.
        kind: registered model (``neural`` or ``kde``; :data:`geocsp.sdm.fit.SDM_MODELS`).
        bandwidth: KDE bandwidth rule (``cv``, ``scott``) or km, for ``kde`` and ``shrink``.
        shrink: pool the network with a KDE, weight ``n / (n + k)``: None (off), ``cv``
            (k chosen by spatial-block CV on the training data) or k >= 0.
        r_min_deg: finest scale of the default position encoder; None = 0.1°.

    Raises:
        ConfigError: unknown inputs, kind or shrink value; ``shrink`` with ``kde``.
    """

    inputs: str | None = None
    encoder: str | None = None
    init: str | None = None
    kind: str = "neural"
    bandwidth: str | float = "cv"
    shrink: str | float | None = None
    r_min_deg: float | None = None

    def __post_init__(self) -> None:
        if self.inputs is not None and self.inputs not in INPUTS:
            raise ConfigError(f"model.inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model.kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}")
        parse_shrink(self.shrink)
        parse_bandwidth(self.bandwidth)
        if self.kind == "kde" and (self.shrink is not None or self.inputs not in (None, "position")):
            raise ConfigError("model.kind kde uses coordinates only: no model.shrink, model.inputs position")
        _at_least("model.", 1e-6, "°", r_min_deg=self.r_min_deg)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation written to ``metrics.json``.

    Args:
        cv_folds: K spatial-block CV folds; 0 = no CV.
        block_deg: CV block size in degrees.
        pa: presence/absence sites table, or None.
        pa_group_col: survey-group column of the sites: each species is scored only on
            its own group's sites (:mod:`geocsp.sdm.groups`).

    Raises:
        ConfigError: a fold count other than 0 or >= 2 (the block size is checked by the
            fold builder, only when there is CV).
    """

    cv_folds: int = 0
    block_deg: float = 1.0
    pa: str | None = None
    pa_group_col: str | None = None

    def __post_init__(self) -> None:
        if self.cv_folds != 0 and self.cv_folds < 2:
            raise ConfigError(f"evaluation.cv_folds must be 0 (no CV) or >= 2, got {self.cv_folds}")


@dataclass(frozen=True)
class SDMFitConfig:
    """Everything one SDM fit run needs (see the section classes).

    Args:
        records: the presence table.
        background: background sources.
        model: towers, encoder, initialisation.
        options: optimisation.
        evaluation: CV and presence/absence evaluation.

    Raises:
        ConfigError: no background source; a background sample without a region or
            rasters, or with table covariates.
    """

    records: RecordsConfig
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    model: ModelChoice = field(default_factory=ModelChoice)
    options: FitOptions = field(default_factory=FitOptions)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        rec, bg = self.records, self.background
        if not (bg.path or bg.sample or rec.presence_col):
            raise ConfigError(
                "no background: set background.path, background.sample or records.presence_col"
            )
        if bg.sample is not None:
            if rec.region is None and not rec.rasters:
                raise ConfigError("background.sample needs records.region (or records.rasters, whose extent is then used)")
            if rec.covariates:
                raise ConfigError("background.sample cannot give table covariates; use background.path or records.rasters")

    @property
    def inputs(self) -> str:
        """The towers: ``model.inputs``, else both with covariates, else position."""
        cov = self.records.covariates or self.records.rasters or self.records.categorical
        return self.model.inputs or ("both" if cov and self.model.kind != "kde" else "position")
