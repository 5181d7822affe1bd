"""The paper's Tables 1-3 on GeoWorld: their methods, titles and settings (spec §5, §6, §8).

Each table is a tuple of :class:`~geocsp.experiments.plan.Method` rows; :class:`DemoSettings`
says what to run (preset, world, seeds, ratios, workers), usually read from the ``demo:``
section of a demo preset (:func:`settings_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geocsp._registry import Registry
from geocsp.config import load_yaml
from geocsp.data import load_dataset
from geocsp.data.geoworld import TRUTH_FILE, WORLD_PRESETS
from geocsp.demo.autopreset import write_auto_preset
from geocsp.errors import ConfigError
from geocsp.experiments.execute import default_jobs
from geocsp.experiments.plan import Method
from geocsp.pretrained import model_overrides
from geocsp.training.candidates import WRAP
from geocsp.training.presets import PRESETS

BASELINE = "Sup. Only (grid)"
MAIN = "CSP-MC-BLD"


def _objective(name: str) -> tuple[str, ...]:
    return (f"objective.name={name}",)


def _dim(d: int) -> tuple[str, ...]:
    return (f"model.dim={d}",)


_WRAP = WRAP
"""Sup. Only (wrap)'s encoder: the 4 low-frequency wrap features into an FCNet."""
_KDE_ALONE = ("data.epochs=0", "kde.shrink=inf")
"""The class-KDE prior alone (issue 16; :mod:`geocsp.prior.kde`): nothing trained."""
KDE = "Class KDE"
"""geocsp's default prior, shown beside the paper's methods in Table 1 (docs/results.md)."""

TABLES: dict[int, tuple[Method, ...]] = {
    1: (
        Method("Img. Only", image_only=True),
        Method("Sup. Only (wrap)", finetune=_WRAP),
        Method(BASELINE),
        Method("MSE", pretrain=(*_objective("mse"), "objective.args={}")),
        Method("CSP-NCE-BLD", pretrain=(*_objective("csp-nce-bld"), "objective.args={}")),
        Method(MAIN, pretrain=_objective("csp-mc-bld")),
        Method(KDE, finetune=(*_WRAP, *_KDE_ALONE)),
    ),
    2: (
        Method(BASELINE),
        Method("CSP-MC-BLD", pretrain=_objective("csp-mc-bld")),
        Method("CSP-MC-BD", pretrain=_objective("csp-mc-bd")),
        Method("CSP-MC-BL", pretrain=_objective("csp-mc-bl")),
        Method("CSP-MC-B", pretrain=_objective("csp-mc-b")),
    ),
    3: (
        Method(BASELINE),
        *(Method(f"CSP-MC-BLD d={d}", pretrain=(*_objective("csp-mc-bld"), *_dim(d))) for d in (64, 128, 256, 512, 1024)),
    ),
}
"""The methods of the paper's Tables 1-3 (spec §8); Table 1's objective args (τ0) come from the preset.
Table 1 ends with geocsp's default prior, the class KDE (not in the paper; the best prior on every
GeoWorld measured, docs/results.md), so that the paper's methods are always seen beside it."""

SUP_CV_CANDIDATES = ("wrap", "grid-r0.1", "grid-r1", "grid-r5", "grid-r20")
"""``sup-cv``'s candidates: Sup. Only (wrap), Sup. Only (grid) (r_min 0.1°) and grid with coarser r_min."""
SUP_CV_EPOCHS = 0
"""Epochs of ``sup-cv``'s fold fits: 0 = the run's own (60 in the demo preset): 20-epoch fits are
far from converged (held-out scores on the labelled subset moved by 0.8 nats from 20 to 60
epochs), and the 15 fold fits (no evaluation) cost ~10-20 s per run on 2 CPU cores."""

_DISTILL = ("loss.name=distill", "loss.args={base: full, base_args: {bg_weight: 1.0}}")
"""Distillation from the few-shot image classifier (issue 16) around the presets' ``full`` loss."""

_PARTIAL = ("encoder_lr_scale=0.1", "unfreeze_after=0")
"""Partial unfreezing (issue 16): the pre-trained encoder at a tenth of T's learning rate
(chosen on calib among 8 settings: benchmarks/finetune_calib_sweep.py, docs/results.md)."""
_EARLY_STOP = ("early_stop=fused",)
"""Early stopping on calib: the epoch whose calibrated fusion (fitted on calib) is best there."""
_PROTO = ("head_init=prototypes",)
"""CSP zero-shot's prototype head (issue 16): s · cos(e(x), t_y) + b, t_y from the labelled images."""
_PROTO_ZERO_SHOT = (*_PROTO, "data.epochs=0")
_KDE_POOLED = ("kde.shrink=cv",)
"""The network's logits pooled with the class KDE's, weight n_y / (n_y + k), k chosen on calib."""
_ZS_POOLED = ("zeroshot_pool=true",)
"""The fine-tuned logits plus w · the CSP zero-shot prior's, w chosen on calib (geocsp.training.zeroshot)."""

EXTRA_METHODS: tuple[tuple[str, Method], ...] = (
    ("distill", Method("Distill (wrap)", finetune=(*_WRAP, *_DISTILL))),
    ("distill-grid", Method("Distill (grid)", finetune=_DISTILL)),
    ("csp-distill", Method("CSP-MC-BLD + Distill", pretrain=_objective("csp-mc-bld"), finetune=_DISTILL)),
    ("geoclip", Method("GeoCLIP init", finetune=("init=geoclip", *model_overrides("geoclip")))),
    ("csp-frozen", Method("CSP-MC-BLD frozen", pretrain=_objective("csp-mc-bld"), finetune=("freeze_encoder=true",))),
    ("csp-partial", Method("CSP-MC-BLD partial", pretrain=_objective("csp-mc-bld"), finetune=_PARTIAL)),
    ("csp-es", Method("CSP-MC-BLD + ES", pretrain=_objective("csp-mc-bld"), finetune=_EARLY_STOP)),
    ("sup-wrap-es", Method("Sup. Only (wrap) + ES", finetune=(*_WRAP, *_EARLY_STOP))),
    ("sup-cv", Method("Sup. CV-selected", finetune=(f"select.candidates=[{', '.join(SUP_CV_CANDIDATES)}]",
                                                  f"select.epochs={SUP_CV_EPOCHS}"))),
    ("csp-zeroshot", Method("CSP zero-shot", pretrain=_objective("csp-mc-bld"), finetune=_PROTO_ZERO_SHOT)),
    ("csp-proto", Method("CSP-MC-BLD + prototypes", pretrain=_objective("csp-mc-bld"), finetune=_PROTO)),
    ("csp-zs-pool", Method("CSP-MC-BLD + zero-shot", pretrain=_objective("csp-mc-bld"), finetune=_ZS_POOLED)),
    ("kde-labelled", Method("Class KDE (labelled pool)", finetune=(*_WRAP, *_KDE_ALONE, "kde.pool=labelled"))),
    ("kde-soft", Method("Class KDE + pseudo-labels", finetune=(*_WRAP, *_KDE_ALONE, "kde.soft=cv"))),
    ("kde-prior", Method("Class KDE + class prior", finetune=(*_WRAP, *_KDE_ALONE, "kde.class_prior=cv"))),
    ("sup-wrap-kde", Method("Class KDE + Sup. (wrap)", finetune=(*_WRAP, *_KDE_POOLED))),
    ("csp-kde", Method("Class KDE + CSP-MC-BLD", pretrain=_objective("csp-mc-bld"), finetune=_KDE_POOLED)),
)
"""Methods beyond the paper's, by short name: Sup. Only (wrap / grid) or CSP-MC-BLD
pre-training, fine-tuned with the ``distill`` loss (soft targets from the image classifier
of the run's ratio on the ``unlabeled`` and non-subset ``train`` rows; docs/objectives.md),
and GeoCLIP's released location encoder fine-tuned as the prior (``geoclip``: needs the
``geoclip`` package's weights; docs/pretrained.md). Fine-tuning that keeps what pre-training
learned (issue 16 item 3; docs/training.md): CSP-MC-BLD with a frozen encoder (T only),
with partial unfreezing, or with early stopping on calib, and Sup. Only (wrap) with early
stopping on calib (the fair comparison); and Sup. Only whose architecture (encoder family,
finest scale r_min) is chosen by 3-fold cross-validation on the run's labelled subset
(``sup-cv``: :mod:`geocsp.training.select`); and CSP zero-shot: CSP-MC-BLD pre-training
and a prior from the similarity of e(x) to each class's prototype, the projected labelled
images of the class (``csp-zeroshot``: no fine-tuning; ``csp-proto``: that head, then the usual
fine-tuning; :mod:`geocsp.training.prototypes`, docs/objectives.md; ``csp-zs-pool``: CSP-MC-BLD
fine-tuned, its logits plus w · the zero-shot prior's, w chosen on calib, :mod:`geocsp.training.zeroshot`); variants of the
class-KDE prior (:mod:`geocsp.prior.kde`; ``kde``, the KDE alone, is in Table 1): ``kde-labelled``
(the pool without the unlabeled locations, an ablation), ``kde-soft`` (plus the unlabeled pairs
and unused train rows pseudo-labelled by the image classifier, their weight chosen on calib),
``kde-prior`` (plus the class-prior term c · log(Q p̂_y), c chosen on calib: for a class-balanced
image classifier),
and the KDE pooled with Sup. Only (wrap) or CSP-MC-BLD's network
(``sup-wrap-kde``, ``csp-kde``: weight n_y / (n_y + k), k chosen on calib)."""

METHODS: Registry[Method] = Registry("method")
"""Methods by short name (``geocsp bench paper --methods img-only,sup-grid,...``): Table 1's,
then :data:`EXTRA_METHODS`."""
for _short, _method in (*zip(("img-only", "sup-wrap", "sup-grid", "mse", "csp-nce-bld", "csp-mc-bld", "kde"), TABLES[1],
                              strict=True), *EXTRA_METHODS):
    METHODS.register(_short, description=_method.name)(_method)


def methods_by_name(text: str | None) -> tuple[Method, ...] | None:
    """The methods of a comma-separated list of :data:`METHODS` names, in the given order.

    Args:
        text: e.g. ``"img-only,sup-grid,csp-mc-bld"``; None or empty for None (the table's).

    Returns:
        The methods, or None.

    Raises:
        ConfigError: on an unknown name ("did you mean") or a repeated one.
    """
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not names:
        return None
    canonical = [METHODS.canonical(n) for n in names]
    if len(set(canonical)) != len(canonical):
        raise ConfigError(f"--methods: expected distinct names, got {names}")
    return tuple(METHODS.get(n).obj for n in canonical)

TABLE_TITLES = {1: "Table 1: fused top-1 on GeoWorld val", 2: "Table 2: ablation of the CSP-MC terms",
                3: "Table 3: location embedding dimension d (CSP-MC-BLD)"}
"""The heading of each table's ``results.md``."""

TABLE_GAIN = {1: (MAIN, BASELINE), 2: (MAIN, BASELINE), 3: ("CSP-MC-BLD d=256", BASELINE)}
"""(method, baseline) of each table's relative-gain row."""


@dataclass(frozen=True)
class DemoSettings:
    """What to run (the ``demo:`` section of a demo preset, plus command-line overrides).

    Args:
        preset: training preset (``src/geocsp/presets/<name>.yaml``) or a YAML path; its
            ``pretrain`` / ``finetune`` sections configure every run.
        world: GeoWorld preset (``small``, ``default`` ...).
        world_seed: GeoWorld seed.
        seeds: training seeds (one run per seed).
        ratios: label ratios λ in (0, 1].
        device: ``auto``, ``cpu``, ``cuda`` ...
        jobs: worker processes (1 = in this process).
        threads: torch threads per worker (0 = leave torch's default).
        figure_ratio: the ratio whose runs the range figure shows (closest stored one).
        data: a geocsp dataset directory to run on instead of generating ``world``.
        crossfit_folds: ``auto`` (default), 0 (off) or K >= 2: every fine-tuning run
            cross-fits its calibrated fusion on K folds of its labelled subset when the dataset
            has no ``calib`` split (``finetune.crossfit_folds``; docs/fusion.md). ``auto`` is
            resolved on the dataset (:func:`~geocsp.experiments.plan.resolve_crossfit`): 3 when it has no ``calib``
            split but ``train`` probabilities, else 0.

    Raises:
        ConfigError: on repeated seeds, ratios outside (0, 1], jobs < 1, threads < 0 or
            crossfit_folds 1 or negative.
    """

    preset: str = "geoworld-demo"
    world: str = "default"
    world_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    ratios: tuple[float, ...] = (0.05, 0.1, 0.2, 1.0)
    device: str = "cpu"
    jobs: int = 1
    threads: int = 0
    figure_ratio: float = 0.1
    data: str | None = None
    crossfit_folds: int | str = "auto"

    def __post_init__(self) -> None:
        k = self.crossfit_folds
        if k != "auto" and (not isinstance(k, int) or k == 1 or k < 0):
            raise ConfigError(f"--crossfit: expected auto, 0 (off) or K >= 2 folds, got {k}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: expected distinct integers, got {list(self.seeds)}")
        if not self.ratios or any(not 0 < r <= 1 for r in self.ratios) or len(set(self.ratios)) != len(self.ratios):
            raise ConfigError(f"ratios: expected distinct label ratios in (0, 1], got {list(self.ratios)}")
        if self.jobs < 1 or self.threads < 0:
            raise ConfigError(f"jobs must be >= 1 and threads >= 0, got jobs={self.jobs}, threads={self.threads}")


def load_demo_section(preset: str) -> dict[str, Any]:
    """The ``demo:`` section of a training preset name or YAML path ({} when absent).

    Args:
        preset: a bundled preset name or a ``.yaml`` / ``.yml`` path.

    Returns:
        The section as a dict.

    Raises:
        ConfigError: on an unknown preset or a section that is not a mapping.
    """
    path = Path(preset) if Path(preset).suffix in (".yaml", ".yml") else PRESETS.get(preset).obj
    section = load_yaml(path).get("demo", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: section 'demo' must be a mapping")
    return section


def is_geoworld(data: str | Path) -> bool:
    """Whether a dataset directory is a GeoWorld (it holds the true ranges, ``truth.npz``).

    Args:
        data: a dataset directory.

    Returns:
        True for a GeoWorld.
    """
    return (Path(data) / TRUTH_FILE).is_file()


def settings_for(preset: str | None = None, *, quick: bool = False, seeds: int | None = None,
                 ratios: tuple[float, ...] | None = None, world: str | None = None, device: str = "cpu",
                 jobs: int | None = None, data: str | None = None, out: str | Path = ".",
                 crossfit_folds: int | str = "auto") -> DemoSettings:
    """The settings of a run: the preset's ``demo:`` section with the given overrides.

    With ``data`` (any geocsp dataset), ``preset="auto"`` -- the default when ``data`` is
    not a GeoWorld -- writes ``OUT/preset-auto.yaml`` sized from the dataset
    (:mod:`geocsp.demo.autopreset`) and uses it.

    Args:
        preset: demo preset name or YAML, or ``auto`` (default ``geoworld-quick`` with
            ``quick``, else ``geoworld-demo``, or ``auto`` for a ``data`` that is not a GeoWorld).
        quick: use the quick preset when ``preset`` is None.
        seeds: number of seeds (``0 .. seeds-1``); None for the section's seeds.
        ratios: label ratios; None or empty for the section's ratios.
        world: GeoWorld preset; None for the section's world.
        device: device of every run.
        jobs: worker processes; None for :func:`~geocsp.experiments.execute.default_jobs`.
        data: a dataset directory to run on (None: the preset's GeoWorld).
        out: the output directory (receives ``preset-auto.yaml``).
        crossfit_folds: see :class:`DemoSettings`.

    Returns:
        The settings.

    Raises:
        ConfigError: on an unknown preset or invalid settings.
        DatasetError: when ``data`` is not a dataset (or lacks what ``auto`` needs).
    """
    name = preset or ("geoworld-quick" if quick else "geoworld-demo")
    if data is not None and (preset == "auto" or (preset is None and not is_geoworld(data))):
        name = str(write_auto_preset(load_dataset(data), Path(out) / "preset-auto.yaml"))
    section = load_demo_section(name)
    n_jobs, threads = default_jobs(device)
    kw: dict[str, Any] = {k: section[k] for k in ("world", "world_seed", "figure_ratio") if k in section}
    kw["seeds"] = tuple(range(seeds)) if seeds else tuple(int(s) for s in section.get("seeds", (0, 1, 2)))
    kw["ratios"] = ratios or tuple(float(r) for r in section.get("ratios", (0.05, 0.1, 0.2, 1.0)))
    if world:
        kw["world"] = WORLD_PRESETS.canonical(world)  # an unknown name: one line, before any work
    return DemoSettings(preset=name, device=device, jobs=jobs or n_jobs,  # crossfit "auto": see resolve_crossfit
                        threads=threads if (jobs or n_jobs) > 1 else 0, data=data, crossfit_folds=crossfit_folds,
                        **kw)

