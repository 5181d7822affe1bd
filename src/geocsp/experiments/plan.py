"""What a multi-run protocol runs: methods × label ratios × seeds as training jobs.

Pre-training runs once per (method, seed) and is shared by every ratio; fine-tuning runs
per (method, ratio, seed) from that pre-training run (or from random initialisation).
Every job carries its resolved config dict and its run directory, named by
:mod:`geocsp.experiments.provenance` so that identical runs of two protocols sharing a
runs folder map to the same directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from geocsp.config import apply_overrides, deep_merge, from_dict, load_yaml, to_dict
from geocsp.data import GeoDataset
from geocsp.errors import ConfigError
from geocsp.experiments.provenance import (
    dataset_identity,
    finetune_run_name,
    model_name,
    pretrain_run_name,
    run_key,
)
from geocsp.training import FinetuneConfig, PretrainConfig, resolve_config


@dataclass(frozen=True)
class Method:
    """One method of a protocol (one row of a table).

    Args:
        name: the row label (paper name).
        pretrain: overrides (``key.path=value``) of the preset's ``pretrain`` section, or None
            for no pre-training ("Sup. Only": fine-tuning from random initialisation).
        finetune: overrides of the preset's ``finetune`` section.
        image_only: no location prior: the row reports the image classifier alone.
    """

    name: str
    pretrain: tuple[str, ...] | None = None
    finetune: tuple[str, ...] = ()
    image_only: bool = False


class PlanSettings(Protocol):
    """What :func:`plan_jobs` reads of a protocol's settings (e.g. ``DemoSettings``)."""

    @property
    def preset(self) -> str:
        """Training preset name or YAML path."""

    @property
    def device(self) -> str:
        """Device of every run (``cpu``, ``cuda`` ...)."""

    @property
    def seeds(self) -> tuple[int, ...]:
        """Training seeds."""

    @property
    def ratios(self) -> tuple[float, ...]:
        """Label ratios λ in (0, 1]."""

    @property
    def crossfit_folds(self) -> int | str:
        """0, or K >= 2: fine-tuning runs cross-fit their calibrated fusion (``auto``: :func:`resolve_crossfit` first)."""


@dataclass(frozen=True)
class Job:
    """One training run.

    Args:
        kind: ``pretrain`` or ``finetune``.
        method: the :attr:`Method.name` it belongs to.
        seed: its seed.
        ratio: its label ratio (None for pre-training).
        config: its resolved config dict.
        run_dir: its run directory.
        init: the pre-training run it starts from (fine-tuning), else None.
        deps: run directories that must finish first.
    """

    kind: str
    method: str
    seed: int
    ratio: float | None
    config: dict[str, Any]
    run_dir: str
    init: str | None = None
    deps: tuple[str, ...] = field(default=())


def preset_kwargs(preset: str) -> dict[str, Any]:
    """``resolve_config`` keywords for a preset name or a YAML path.

    Args:
        preset: a bundled preset name or a ``.yaml`` / ``.yml`` path.

    Returns:
        ``{"config_file": path}`` or ``{"preset": name}``.
    """
    if Path(preset).suffix in (".yaml", ".yml"):
        return {"config_file": preset}
    return {"preset": preset}


def _resolved(cls: type, stage: str, preset: str, overrides: list[str]) -> dict[str, Any]:
    """The resolved config dict of one stage of a preset.

    A YAML demo preset (one with a ``demo:`` section, e.g. ``preset-auto.yaml``) contributes
    its ``stage`` section, with ``resolve_config``'s precedence (defaults < section < overrides).
    """
    kwargs = preset_kwargs(preset)
    if "config_file" in kwargs:
        data = load_yaml(kwargs["config_file"])
        if "demo" in data:
            section = data.get(stage) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"{preset}: section '{stage}' must be a mapping")
            return to_dict(from_dict(cls, apply_overrides(deep_merge(to_dict(cls()), section), overrides),
                                     where=f"{preset}:{stage}"))
    return to_dict(resolve_config(cls, stage=stage, **kwargs, overrides=overrides))


def plan_jobs(settings: PlanSettings, methods: Sequence[Method], data: str, runs: Path) -> list[Job]:
    """Every pre-training and fine-tuning run the methods need, pre-training first.

    Runs are named by what they are plus a hash of the resolved config, the dataset's
    manifest (so a ``runs`` folder shared between two worlds never mixes them) and the
    geocsp version (``pretrain/<objective>-d<dim>-s<seed>-<hash>``,
    ``finetune/<from-...|sup-...>-r<λ>-s<seed>-<hash>``), so identical runs of two tables
    sharing ``runs`` (e.g. Sup. Only (grid), or Table 3's d = 128 row and Table 1's
    CSP-MC-BLD) map to the same directory.

    Args:
        settings: preset, device, seeds and ratios.
        methods: the methods (``image_only`` ones need no run).
        data: the dataset directory (its manifest enters the run names).
        runs: the directory holding ``pretrain/`` and ``finetune/`` runs.

    Returns:
        The jobs: pre-training runs (deduplicated), then fine-tuning runs in method, seed,
        ratio order.
    """
    identity = dataset_identity(data)
    folds = settings.crossfit_folds
    if folds == "auto":
        raise ConfigError("plan_jobs: resolve crossfit_folds 'auto' on the dataset first (resolve_crossfit)")
    common = [f"device={settings.device}", "quiet=true"]
    pre_jobs: dict[str, Job] = {}
    ft_jobs: list[Job] = []
    for m in methods:
        if m.image_only:
            continue
        for seed in settings.seeds:
            init, pretrained = None, None
            if m.pretrain is not None:
                cfg = _resolved(PretrainConfig, "pretrain", settings.preset, [*m.pretrain, *common, f"seed={seed}"])
                init = str(runs / "pretrain" / pretrain_run_name(cfg, seed, run_key(identity, cfg)))
                pretrained = model_name(cfg)
                pre_jobs[init] = Job("pretrain", m.name, seed, None, cfg, init)
            crossfit = [f"crossfit_folds={folds}"] if folds else []
            for ratio in settings.ratios:
                cfg = _resolved(FinetuneConfig, "finetune", settings.preset,
                                [*m.finetune, *common, *crossfit, f"seed={seed}", f"ratio={ratio}"])
                if init is not None:
                    cfg["init"] = init
                name = finetune_run_name(cfg, ratio, seed, run_key(identity, cfg), pretrained)
                ft_jobs.append(Job("finetune", m.name, seed, ratio, cfg, str(runs / "finetune" / name), init,
                                   (init,) if init else ()))
    return [*pre_jobs.values(), *ft_jobs]

CROSSFIT_AUTO_FOLDS = 3
"""Folds of ``--crossfit auto`` when it cross-fits."""


def resolve_crossfit(value: int | str, ds: GeoDataset, ratios: tuple[float, ...]) -> int:
    """The cross-fit folds of a protocol run: ``value``, or what ``auto`` means for ``ds``.

    ``auto``: 0 when ``ds`` has a ``calib`` split (the fusion is fitted there) or when its
    ``train`` split lacks image probabilities for one of the ratios (nothing to cross-fit
    on; the runs then say why they have no calibrated fusion), else
    :data:`CROSSFIT_AUTO_FOLDS`. geocsp cannot tell whether the stored train probabilities
    are out-of-fold; docs/protocol.md says why they must be.

    Args:
        value: ``auto`` or an explicit K (0 = off, >= 2).
        ds: the dataset.
        ratios: the label ratios λ (keys ``ratio{λ:.3f}``, ``default`` also serves λ = 1).

    Returns:
        K (0 = off).
    """
    if value != "auto":
        return int(value)
    if "calib" in ds or "train" not in ds:
        return 0
    keys = ds.split("train").prob_keys
    has = all(f"ratio{q:.3f}" in keys or (q == 1.0 and "default" in keys) for q in ratios)
    return CROSSFIT_AUTO_FOLDS if has else 0
