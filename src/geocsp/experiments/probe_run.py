"""``geocsp bench probe``: encoders × targets × probes × CV schemes, written to JSON as it goes.

A row is a frozen feature map (lon, lat) degrees -> (N, d), named by a spec (:func:`parse_row`):

* ``raw:NAME`` -- a registered position encoder with its default config, no network
  (``geocsp encoders``), e.g. ``raw:sphereC+``;
* ``geoclip`` / ``pretrained:NAME`` -- a released encoder (docs/pretrained.md);
* a run or encoder directory -- e.g. a CSP encoder pre-trained on GeoWorld;
* ``LABEL=SPEC`` -- any of these under a row label of one's choice.

:data:`DEFAULT_ROWS` are probed unless ``defaults=False``; a default row that cannot be loaded
(e.g. GeoCLIP not installed) is skipped and listed under ``"skipped"``, a row given
explicitly must load. A target whose file is missing is skipped the same way.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geocsp import __version__
from geocsp.checkpoints import load_encoder
from geocsp.config import from_dict
from geocsp.data.tables import refuse_existing
from geocsp.encoders import create_encoder
from geocsp.errors import ConfigError, MissingDependencyError, MissingFileError
from geocsp.experiments.probe import (
    CV_SCHEMES,
    PROBES,
    ProbeSettings,
    block_ids,
    cross_validate,
    make_folds,
)
from geocsp.experiments.probe_report import write_figure
from geocsp.experiments.probe_targets import TARGETS, build_target
from geocsp.experiments.provenance import machine_info
from geocsp.io import atomic_write_json

DEFAULT_ROWS = ("raw:wrap", "raw:grid", "raw:sphereC+", "raw:spherical_harmonics", "raw:rff", "geoclip")
DEFAULT_TARGETS = ("koppen", "land", "precip", "country")
FORMAT = "geocsp-probe"
VERSION = 1
CHUNK = 4096

Featurizer = Callable[[np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class ProbeRun:
    """One ``bench probe`` run: what to probe, on how many points.

    Attributes:
        rows: row specs (:func:`parse_row`) probed besides the defaults.
        targets: target names (:data:`~geocsp.experiments.probe_targets.TARGETS`).
        probes: ``linear`` and/or ``mlp``.
        n: points per target.
        reference: directory laid out like ``shared/data`` (precip, country), or None.
        defaults: probe :data:`DEFAULT_ROWS` too.
        grid_deg: cell size of the PCA figure's lon/lat grid, degrees.
        settings: the probes' hyper-parameters, folds and seed.
    """

    rows: tuple[str, ...] = ()
    targets: tuple[str, ...] = DEFAULT_TARGETS
    probes: tuple[str, ...] = PROBES
    n: int = 10_000
    reference: str | None = None
    defaults: bool = True
    grid_deg: float = 2.0
    settings: ProbeSettings = field(default_factory=ProbeSettings)


QUICK_N, QUICK_GRID_DEG = 300, 10.0
QUICK_SETTINGS: dict[str, Any] = {"folds": 3, "block_deg": 30.0, "epochs": 2, "lbfgs_iters": 10, "hidden": 32}
"""What ``--quick`` changes (with 300 points and a 10° figure grid): a seconds-long smoke run."""


def quick(run: ProbeRun) -> ProbeRun:
    """``run`` with the :data:`QUICK` sizes (tiny sample, few iterations).

    Args:
        run: the full-size run.

    Returns:
        The quick run (:data:`QUICK_SETTINGS`).
    """
    return replace(run, n=QUICK_N, grid_deg=QUICK_GRID_DEG, settings=replace(run.settings, **QUICK_SETTINGS))


def _encode_with(module: torch.nn.Module) -> Featurizer:
    module.eval()

    def encode(lonlat: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(lonlat, dtype=np.float32))
        with torch.no_grad():
            return torch.cat([module(c).float() for c in x.split(CHUNK)]) if len(x) else x

    return encode


def parse_row(spec: str) -> tuple[str, str]:
    """(label, spec) of a row spec ``[LABEL=]SPEC``.

    Args:
        spec: ``raw:NAME``, a pretrained name, a directory, each optionally ``LABEL=``-prefixed.

    Returns:
        (row label, spec without the label); the default label of ``raw:NAME`` is ``NAME``,
        of a directory its name.

    Raises:
        ConfigError: on an empty label or spec.
    """
    label, sep, rest = spec.partition("=")
    if not sep:
        label, rest = "", spec
    if not rest.strip() or (sep and not label.strip()):
        raise ConfigError(f"--encoder: expected [LABEL=]raw:NAME | PRETRAINED | DIR, got {spec!r}")
    rest = rest.strip()
    default = rest[4:] if rest.startswith("raw:") else (Path(rest).name if Path(rest).exists() else rest)
    return (label.strip() or default), rest


def load_row(spec: str) -> tuple[Featurizer, dict[str, Any]]:
    """A row's feature map and description.

    Args:
        spec: ``raw:NAME``, a pretrained name or a run / encoder directory (no label).

    Returns:
        (featurizer (N, 2) degrees -> (N, d) float32, ``{"spec", "kind", "dim"}``).

    Raises:
        ConfigError: on an unknown encoder name.
        GeocspError: when a pretrained encoder or directory cannot be loaded.
    """
    if spec.startswith("raw:"):
        enc = create_encoder(spec[4:])
        return _encode_with(enc), {"spec": spec, "kind": "position encoding", "dim": int(enc.out_dim)}
    loc = load_encoder(spec)
    kind = "pretrained" if not Path(spec).exists() else "location encoder (directory)"
    return _encode_with(loc), {"spec": spec, "kind": kind, "dim": int(loc.dim)}


def row_specs(run: ProbeRun) -> list[tuple[str, str, bool]]:
    """(label, spec, explicit) of every row, defaults first; labels must be unique.

    Args:
        run: the run.

    Returns:
        The rows in table order.

    Raises:
        ConfigError: on two rows with one label.
    """
    rows = [(*parse_row(s), False) for s in (DEFAULT_ROWS if run.defaults else ())]
    rows += [(*parse_row(s), True) for s in run.rows]
    labels = [r[0] for r in rows]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ConfigError(f"--encoder: row label {dup[0]!r} used twice; name rows with LABEL=SPEC")
    if not rows:
        raise ConfigError("--encoder: no rows to probe (pass --encoder or drop --no-defaults)")
    return rows


def check_run(run: ProbeRun) -> None:
    """Refuse unknown targets / probes and bad sizes before any work.

    Args:
        run: the run.

    Raises:
        ConfigError: naming the option at fault.
    """
    for t in run.targets:
        TARGETS.canonical(t)
    bad = [p for p in run.probes if p not in PROBES]
    if bad or not run.probes:
        raise ConfigError(f"--probes: expected some of {', '.join(PROBES)}, got {','.join(run.probes)!r}")
    if run.n < 10 * run.settings.folds:
        raise ConfigError(f"--n: expected at least {10 * run.settings.folds} points for {run.settings.folds} folds, got {run.n}")
    if not 0.0 < run.grid_deg <= 30.0:
        raise ConfigError(f"--grid-deg: expected a cell size in (0, 30] degrees, got {run.grid_deg}")


def run_probe(run: ProbeRun, out: str | Path | None = None, figure: str | Path | None = None,
              progress: Callable[[str], None] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Probe every row on every target; write ``out`` (JSON) after every (row, target).

    Args:
        run: what to probe.
        out: the results JSON (rewritten atomically as results arrive), or None.
        figure: the PCA → RGB map of every loaded row (PNG), drawn first, or None.
        progress: called with one line per finished (row, target).
        overwrite: replace an existing ``out`` / ``figure`` (refused before any work otherwise).

    Returns:
        The results dict (schema in docs/probe.md): ``format``, ``version``, ``created``,
        ``geocsp``, ``machine``, ``run``, ``targets``, ``rows``, ``skipped``, ``results``
        (one record per target × row × probe × cv with ``metric``, ``mean``, ``sd``,
        ``folds``, ``seconds``).

    Raises:
        ConfigError: on a bad run (:func:`check_run`, :func:`row_specs`) or an existing
            output without ``overwrite``.
        GeocspError: when an explicitly requested row cannot be loaded.
    """
    check_run(run)
    for path, option in ((out, "--out"), (figure, "--figure")):
        if path is not None:
            refuse_existing(path, overwrite, option, file=True)
    say = progress or (lambda _line: None)
    res: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "geocsp": __version__, "machine": machine_info(), "run": asdict(run),
        "targets": {}, "rows": {}, "skipped": [], "results": []}
    featurizers: dict[str, Featurizer] = {}
    for label, spec, explicit in row_specs(run):
        try:
            featurizers[label], res["rows"][label] = load_row(spec)
        except (MissingDependencyError, MissingFileError) as e:
            if explicit:
                raise
            res["skipped"].append({"row": label, "reason": str(e)})
            say(f"skipped row {label}: {e}")
    if figure is not None:
        say(f"figure: {write_figure(featurizers, run.grid_deg, figure)}")
    for name in run.targets:
        try:
            target = build_target(name, run.n, run.settings.seed, run.reference)
        except MissingFileError as e:
            res["skipped"].append({"target": name, "reason": str(e)})
            say(f"skipped target {name}: {e}")
            continue
        folds = {cv: make_folds(target.lonlat, cv, run.settings) for cv in CV_SCHEMES}
        res["targets"][target.name] = {
            "task": target.task, "metric": "accuracy" if target.task == "classification" else "r2",
            "n": len(target.y), "classes": len(target.classes), "source": target.source,
            "blocks": len(np.unique(block_ids(target.lonlat, run.settings.block_deg))),
            "fold_sizes": {cv: np.bincount(f).tolist() for cv, f in folds.items()}}
        for cv, f in folds.items():
            res["results"].append({"target": target.name, "row": "baseline", "probe": "baseline", "cv": cv,
                                   **cross_validate(torch.zeros(len(f), 1), target, f, "baseline", run.settings)})
        for label, featurize in featurizers.items():
            t0 = time.perf_counter()
            x = featurize(target.lonlat)
            for probe in run.probes:
                for cv, f in folds.items():
                    res["results"].append({"target": target.name, "row": label, "probe": probe, "cv": cv,
                                           **cross_validate(x, target, f, probe, run.settings)})
            if out is not None:
                atomic_write_json(out, res)
            say(f"{target.name:8s} {label:24s} done in {time.perf_counter() - t0:6.1f} s")
    if out is not None:
        atomic_write_json(out, res)
    return res


def run_from_options(targets: Sequence[str], probes: Sequence[str], rows: Sequence[str],
                     **fields: Any) -> ProbeRun:
    """A :class:`ProbeRun` from CLI values (settings fields given by name).

    Args:
        targets: target names.
        probes: probe names.
        rows: extra row specs.
        **fields: ``n``, ``reference``, ``defaults``, ``grid_deg`` and any
            :class:`~geocsp.experiments.probe.ProbeSettings` field.

    Returns:
        The run.

    Raises:
        ConfigError: on an invalid value.
    """
    names = set(ProbeSettings.__dataclass_fields__)
    settings = from_dict(ProbeSettings, {k: v for k, v in fields.items() if k in names and v is not None},
                         where="bench probe")
    rest = {k: v for k, v in fields.items() if k not in names and v is not None}
    return ProbeRun(rows=tuple(rows), targets=tuple(targets), probes=tuple(probes), settings=settings, **rest)


__all__ = ["DEFAULT_ROWS", "DEFAULT_TARGETS", "ProbeRun", "load_row", "parse_row", "quick", "row_specs",
           "run_from_options", "run_probe"]
