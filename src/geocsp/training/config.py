"""Frozen run configs of pre-training, fine-tuning and evaluation (spec §4.6–4.8, §5, §6).

A run config nests one section per component; each section maps to one constructor:

* ``model``       -> :class:`geocsp.nets.LocationEncoder` (a ``LocationEncoderConfig``);
* ``objective``   -> ``OBJECTIVES[name](args, loc_dim=d, img_dim=D)`` (pre-training);
* ``loss``        -> ``FINETUNE_LOSSES[name](args)`` (fine-tuning);
* ``projection``  -> the image projection W (Linear D -> d, or an MLP);
* ``optim``       -> ``torch.optim.Adam(lr, weight_decay)`` with lr * lr_decay^epoch;
* ``data``        -> epoch sampler, batch size, epochs and the negative ``LOCATION_SAMPLERS``.

Dicts become these dataclasses only through :func:`geocsp.config.from_dict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from geocsp.errors import ConfigError
from geocsp.nets import LocationEncoderConfig
from geocsp.prior.kde import KDEConfig
from geocsp.training.candidates import SelectConfig

PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("reduce-overhead", "max-autotune")
"""``compile`` values besides true / false: ``torch.compile`` modes."""
EARLY_STOP = ("off", "fused", "location")
"""``FinetuneConfig.early_stop`` values: off, or the calib criterion (docs/training.md)."""
FUSION_CRITERIA = ("top1", "nll")
"""How the calibrated fusion is chosen (``geocsp.evaluation.calibration.CRITERIA``)."""


def _positive(owner: str, **values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{owner}.{name} must be a finite number > 0, got {v!r}")


def _nonnegative(owner: str, **values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ConfigError(f"{owner}.{name} must be a finite number >= 0, got {v!r}")


def _check_criterion(owner: str, criterion: str) -> None:
    if criterion not in FUSION_CRITERIA:
        raise ConfigError(f"{owner}.fusion_criterion must be one of {list(FUSION_CRITERIA)}, got {criterion!r}")


@dataclass(frozen=True)
class ComponentConfig:
    """A registered component by name plus its config fields.

    Args:
        name: registry name or alias (e.g. ``csp-mc-bld``, ``full``, ``sphere``).
        args: fields of that component's config dataclass (validated when it is built).
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"component name must be a non-empty string, got {self.name!r}")


def _objective() -> ComponentConfig:
    return ComponentConfig("csp-mc-bld")


def _full_loss() -> ComponentConfig:
    return ComponentConfig("full")


def _sphere() -> ComponentConfig:
    return ComponentConfig("sphere")


@dataclass(frozen=True)
class ProjectionConfig:
    """The image projection W: F(I) (D) -> d (spec §3.4).

    Args:
        kind: ``linear`` (the reference code: one Linear with bias) or ``mlp`` (the paper's
            A.2.1 wording: Linear -> ReLU -> Linear).
        hidden: hidden width of the ``mlp``.
    """

    kind: Literal["linear", "mlp"] = "linear"
    hidden: int = 512

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "mlp"):
            raise ConfigError(f"projection.kind must be 'linear' or 'mlp', got {self.kind!r}")
        _positive("projection", hidden=self.hidden)


@dataclass(frozen=True)
class OptimConfig:
    """Adam settings (spec §4.7, §5).

    Args:
        lr: learning rate at epoch 0.
        weight_decay: Adam L2 weight decay (reference: 0).
        lr_decay: lr at epoch e is ``lr * lr_decay**e`` (reference: 1 pre-training,
            0.98 fine-tuning).
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay: float = 1.0

    def __post_init__(self) -> None:
        _positive("optim", lr=self.lr, lr_decay=self.lr_decay)
        _nonnegative("optim", weight_decay=self.weight_decay)


@dataclass(frozen=True)
class DataConfig:
    """What an epoch is made of.

    Args:
        epochs: number of epochs (>= 1; 0 only for a fine-tuning run with
            ``head_init: prototypes``, the zero-shot prior).
        batch_size: rows per step (the last batch may be smaller).
        sampler: ``shuffle`` (every usable row once per epoch) or ``balanced`` (at most
            ``max_per_class`` rows per class per epoch, the reference's default; needs labels).
        max_per_class: cap of the balanced sampler.
        negatives: random-location sampler (``LOCATION_SAMPLERS``) for negatives / background.
        use_unlabeled: pre-training only: also use the ``unlabeled`` split's pairs.
    """

    epochs: int = 10
    batch_size: int = 1024
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    max_per_class: int = 100
    negatives: ComponentConfig = field(default_factory=_sphere)
    use_unlabeled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"data.epochs must be an integer >= 1, got {self.epochs!r}")
        _positive("data", batch_size=self.batch_size, max_per_class=self.max_per_class)
        if self.sampler not in ("shuffle", "balanced"):
            raise ConfigError(f"data.sampler must be 'shuffle' or 'balanced', got {self.sampler!r}")


def _check_runtime(owner: str, cfg: Any) -> None:
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"{owner}.precision must be one of {list(PRECISIONS)}, got {cfg.precision!r}")
    if not isinstance(cfg.compile, bool) and cfg.compile not in COMPILE_MODES:
        raise ConfigError(f"{owner}.compile must be true, false or one of {list(COMPILE_MODES)}, got {cfg.compile!r}")
    if not isinstance(cfg.device, str) or not cfg.device:
        raise ConfigError(f"{owner}.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {cfg.device!r}")
    _positive(owner, checkpoint_every=cfg.checkpoint_every, keep_checkpoints=cfg.keep_checkpoints)
    _nonnegative(owner, eval_every=cfg.eval_every)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"{owner}.seed must be an integer in [0, 2^32), got {cfg.seed!r}")


def _pretrain_data() -> DataConfig:
    return DataConfig(epochs=10)


@dataclass(frozen=True)
class PretrainConfig:
    """CSP pre-training run (spec §3.4, §4).

    Args:
        model: the location encoder e(x).
        objective: pre-training objective (``OBJECTIVES``), default CSP-MC-BLD.
        projection: the image projection W.
        optim: Adam; lr constant by default (spec §4.7).
        data: epochs, batch size, epoch sampler, negative-location sampler.
        seed: seeds parameters, epoch order, dropout and negatives (per epoch).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``fp32`` or ``bf16`` (autocast; master weights stay float32).
        compile: wrap the location encoder and W in ``torch.compile``: ``true`` (torch's default
            mode), ``reduce-overhead`` (CUDA graphs: for small steps whose time is kernel
            launches, on a GPU) or ``max-autotune``; ``false`` (default) runs eagerly.
        checkpoint_every: write a checkpoint every this many epochs (and after the last).
        keep_checkpoints: how many most recent checkpoints to keep.
        eval_every: every this many epochs log the objective on the ``val`` split (0 = never).
        quiet: no progress bars.
    """

    model: LocationEncoderConfig = field(default_factory=LocationEncoderConfig)
    objective: ComponentConfig = field(default_factory=_objective)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=_pretrain_data)
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool | Literal["reduce-overhead", "max-autotune"] = False
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    eval_every: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        _check_runtime("pretrain", self)
        if self.data.epochs < 1:
            raise ConfigError(f"data.epochs must be an integer >= 1, got {self.data.epochs!r}")


def _finetune_optim() -> OptimConfig:
    return OptimConfig(lr=1e-3, lr_decay=0.98)


def _finetune_data() -> DataConfig:
    return DataConfig(epochs=30, sampler="balanced", use_unlabeled=False)


@dataclass(frozen=True)
class FinetuneConfig:
    """Supervised fine-tuning of the location prior P(y|x) = sigmoid(T e(x)) (spec §5).

    Args:
        init: pre-training run dir (or encoder dir) to start from; None = "Sup. Only".
        model: the location encoder when ``init`` is None; with ``init`` the architecture is
            the checkpoint's, and a field set to anything else is refused (ConfigError).
        loss: fine-tuning loss (``FINETUNE_LOSSES``), default the presence-only ``full``.
        optim: Adam; lr * 0.98^epoch by default.
        data: epochs, batch size, epoch sampler, background-location sampler.
        ratio: label ratio λ in (0, 1]: a stratified subset of the labelled training rows;
            with ``subset`` it only names the image classifier (``auto`` -> ``ratio{λ:.3f}``).
        subset: ``FILE[:COLUMN]`` of the train rows the image classifier was trained on
            (:func:`geocsp.data.subset_file.read_subset`), used instead of the stratified draw.
        subset_sha256: the SHA-256 of the subset file, pinned when the run starts.
        freeze_encoder: train T only (a linear probe on e(x)); the encoder runs in eval mode.
        encoder_lr_scale: the encoder's learning rate is ``lr * encoder_lr_scale`` (T keeps
            ``lr``): 1 = full fine-tuning (default), 0 = frozen (as ``freeze_encoder``),
            in between = partial unfreezing with a discriminative learning rate.
        unfreeze_after: gradual unfreezing: the first ``unfreeze_after`` epochs train T only
            (encoder frozen, eval mode, no Adam state), then the encoder trains too, at
            ``lr * encoder_lr_scale``. 0 (default) = from the first epoch.
        early_stop: choose the epoch on the ``calib`` split (never ``val``): after every epoch
            the prior is scored on calib and the best epoch's weights become the run's
            prior. ``off`` (default): the last epoch. ``fused``: top-1 of the calibrated
            fusion fitted on calib (what the calibrated evaluation reports). ``location``:
            the location-only NLL on calib (no image probabilities needed).
        patience: with ``early_stop``, stop after this many epochs without a better calib
            score (0 = train every epoch, still keep the best).
        optim_from_init: start Adam with the encoder's moments and step count from the
            ``init`` pre-training run's last checkpoint (the reference code's behaviour,
            spec §9.2.7); T starts fresh. Default off: a fresh Adam.
        beta: exponent of P(y|x) in the fused score for the final evaluation.
        fusion_criterion: how the calibrated fusion's (β, ε) are chosen on the fitting rows
            (calib or the cross-fit): ``top1`` (default) or ``nll`` (the lowest fused
            negative log-likelihood, a proper score; docs/fusion.md). Also early stopping's.
        head_init: ``random`` (default): the linear head T e(x), randomly initialised;
            ``prototypes``: CSP zero-shot, a cosine head ``s · cos(e(x), t_y) + b`` whose
            prototype t_y is the normalised mean of the projected image features of class
            y's labelled rows in the run's subset, with s and b fitted on that subset
            (:mod:`geocsp.training.prototypes`; needs ``init`` = a pre-training run with its
            image projection). With ``data.epochs: 0`` the run is the zero-shot prior;
            otherwise the cosine head and the encoder are then fine-tuned as usual.
        crossfit_folds: 0 (default, off) or K >= 2: without a ``calib`` split but with
            image probabilities for ``train``, fit the calibrated fusion by refitting the prior
            K times on folds of the labelled subset (:mod:`geocsp.training.crossfit`); it needs
            *out-of-fold* train probabilities to be unbiased (docs/fusion.md).
        select: choose the prior's architecture by cross-validation on the labelled subset
            (:class:`SelectConfig`; off by default). Only from random initialisation.
        kde: the class-KDE prior, alone or pooled with the network (:class:`KDEConfig`,
            :mod:`geocsp.prior.kde`; off by default).
        zeroshot_pool: add the CSP zero-shot prior of the labelled subset (the ``init``
            encoder with a prototype head) to the fine-tuned logits with a weight chosen on
            ``calib`` (:mod:`geocsp.training.zeroshot`; needs ``init`` and a labelled calib
            split; not with ``kde``). Default off.
        seed, device, precision, compile, checkpoint_every, keep_checkpoints, eval_every,
            quiet: as in :class:`PretrainConfig`; ``eval_every`` runs the full evaluation
            on ``val`` and logs it.
    """

    init: str | None = None
    model: LocationEncoderConfig = field(default_factory=LocationEncoderConfig)
    loss: ComponentConfig = field(default_factory=_full_loss)
    optim: OptimConfig = field(default_factory=_finetune_optim)
    data: DataConfig = field(default_factory=_finetune_data)
    ratio: float = 1.0
    subset: str | None = None
    subset_sha256: str | None = None
    freeze_encoder: bool = False
    optim_from_init: bool = False
    encoder_lr_scale: float = 1.0
    unfreeze_after: int = 0
    early_stop: Literal["off", "fused", "location"] = "off"
    patience: int = 0
    beta: float = 1.0
    fusion_criterion: Literal["top1", "nll"] = "top1"
    head_init: Literal["random", "prototypes"] = "random"
    crossfit_folds: int = 0
    select: SelectConfig = field(default_factory=SelectConfig)
    kde: KDEConfig = field(default_factory=KDEConfig)
    zeroshot_pool: bool = False
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool | Literal["reduce-overhead", "max-autotune"] = False
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    eval_every: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        _check_runtime("finetune", self)
        if self.crossfit_folds == 1 or self.crossfit_folds < 0:
            raise ConfigError(f"finetune.crossfit_folds must be 0 (off) or >= 2, got {self.crossfit_folds}")
        if self.select.candidates and self.init is not None:
            raise ConfigError("finetune.select.candidates chooses the architecture of a prior trained from random "
                              f"initialisation; it cannot be combined with init={self.init}")
        if self.optim_from_init and self.encoder_frozen:
            raise ConfigError("finetune.optim_from_init carries the encoder's Adam state; "
                              "it cannot be combined with freeze_encoder (or encoder_lr_scale=0)")
        self._check_selection()
        if not (isinstance(self.ratio, (int, float)) and 0 < self.ratio <= 1):
            raise ConfigError(f"finetune.ratio must be in (0, 1], got {self.ratio!r}")
        _nonnegative("finetune", beta=self.beta)
        _check_criterion("finetune", self.fusion_criterion)
        if self.zeroshot_pool and self.kde.enabled:
            raise ConfigError("finetune.zeroshot_pool cannot be combined with kde (one pooled prior at a time)")
        if self.head_init not in ("random", "prototypes"):
            raise ConfigError(f"finetune.head_init must be 'random' or 'prototypes', got {self.head_init!r}")
        if self.data.epochs < 1 and self.head_init != "prototypes" and not self.kde.alone:
            raise ConfigError(f"data.epochs must be an integer >= 1 (0 only with head_init=prototypes or "
                              f"kde.shrink=inf), got {self.data.epochs!r}")

    @property
    def encoder_frozen(self) -> bool:
        """Whether the encoder never trains (``freeze_encoder`` or ``encoder_lr_scale == 0``)."""
        return self.freeze_encoder or self.encoder_lr_scale == 0

    def _check_selection(self) -> None:
        """Partial unfreezing and early stopping fields (ConfigError on a bad one)."""
        _nonnegative("finetune", encoder_lr_scale=self.encoder_lr_scale)
        for name in ("unfreeze_after", "patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"finetune.{name} must be an integer >= 0, got {v!r}")
        if self.unfreeze_after and self.encoder_frozen:
            raise ConfigError("finetune.unfreeze_after unfreezes the encoder; it cannot be combined with "
                              "freeze_encoder (or encoder_lr_scale=0)")
        if self.unfreeze_after and self.unfreeze_after >= self.data.epochs:
            raise ConfigError(f"finetune.unfreeze_after ({self.unfreeze_after}) must be below data.epochs "
                              f"({self.data.epochs}); for a frozen encoder set freeze_encoder=true")
        if self.early_stop not in EARLY_STOP:
            raise ConfigError(f"finetune.early_stop must be one of {list(EARLY_STOP)}, got {self.early_stop!r}")
        if self.patience and self.early_stop == "off":
            raise ConfigError("finetune.patience needs early_stop (fused or location)")


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluation of a fine-tuned run (spec §6).

    Args:
        split: dataset split to evaluate.
        probs_key: image-probability set; ``auto`` = ``ratio{λ:.3f}`` when the split has it
            (the few-shot classifier of the run's ratio), else ``default``.
        beta: exponent of P(y|x) in the paper's fused score (``fused``), or ``tune`` (chosen
            on the ``calib_split``, which must exist).
        batch_size: rows per evaluation chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...
        calib_split: the split the calibrated fusion (``fused_calibrated``) is fitted on when
            the dataset has it; otherwise it comes from the run's cross-fit on its labelled
            train subset (``finetune.crossfit_folds``), else there is none.
        crossfit_folds: folds of that cross-fitting (>= 2; fewer when the subset has fewer rows).
        fusion_criterion: ``top1`` or ``nll``, as ``FinetuneConfig.fusion_criterion``.
    """

    split: str = "val"
    probs_key: str = "auto"
    beta: float | str = 1.0
    batch_size: int = 4096
    device: str = "auto"
    calib_split: str = "calib"
    crossfit_folds: int = 3
    fusion_criterion: str = "top1"

    def __post_init__(self) -> None:
        _positive("evaluate", batch_size=self.batch_size)
        _check_criterion("evaluate", self.fusion_criterion)
        if self.crossfit_folds < 2:
            raise ConfigError(f"evaluate.crossfit_folds must be >= 2, got {self.crossfit_folds}")
        if isinstance(self.beta, str) and self.beta != "tune":
            raise ConfigError(f"evaluate.beta must be a number >= 0 or 'tune', got {self.beta!r}")
        if not isinstance(self.beta, str):
            _nonnegative("evaluate", beta=self.beta)
