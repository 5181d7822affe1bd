"""Early stopping of fine-tuning on the calibration split (``finetune.early_stop``).

After every epoch the in-memory prior is scored on the dataset's ``calib`` split (never on
``val``, the reported split) and the best epoch's weights are kept; at the end they become
the run's prior. Criteria (docs/training.md):

* ``fused``: top-1 (or, with ``fusion_criterion: nll``, minus the NLL) of the calibrated
  fusion ``log P(y|I) + β log(ε + (1 − ε) P(y|x))`` fitted on calib, as the final evaluation fits it (:func:`~geocsp.training.evaluate.evaluate_split`
  with calib as both the fitting and the scored split). It scores what the calibrated
  evaluation reports; the fit's 2 parameters are in-sample, equally for every epoch.
* ``location``: the location-only NLL of P(y|x) (normalised over classes) on calib; needs
  no image probabilities.

The selector's state (best epoch, score, weights, epochs without improvement) is saved in
every checkpoint (:class:`~geocsp.training.loop.EpochHook`), so a resumed run chooses the
same epoch as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from geocsp.data import GeoDataset, Split
from geocsp.errors import ConfigError
from geocsp.training.config import EvaluateConfig, FinetuneConfig
from geocsp.training.evaluate import calib_split, eval_probs_key, evaluate_split

Scorer = Callable[[], dict[str, Any]]
"""() -> ``{"score": float (larger is better), ...}`` of the current weights on calib."""


@dataclasses.dataclass
class CalibSelector:
    """Keeps the weights of the epoch with the best calib score; stops after ``patience`` worse ones.

    Args:
        criterion: ``fused`` or ``location`` (recorded).
        scorer: scores the current weights on calib.
        module: the trained modules (their ``state_dict`` is what is kept and restored).
        patience: epochs without improvement before stopping (0 = never stop early).
    """

    criterion: str
    scorer: Scorer
    module: nn.Module
    patience: int = 0
    best_epoch: int = 0
    best_score: float = -math.inf
    since_best: int = 0
    epochs_run: int = 0
    best_state: dict[str, Tensor] | None = None

    @property
    def done(self) -> bool:
        """True once ``patience`` epochs in a row did not improve the best calib score."""
        return self.patience > 0 and self.since_best >= self.patience

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Score epoch ``epoch`` (1-based) on calib, log it as ``record["calib"]``, keep it if best.

        Ties keep the earlier epoch; a NaN score never beats a number.
        """
        calib = self.scorer()
        record["calib"] = calib
        score = float(calib["score"])
        score = score if math.isfinite(score) else -math.inf
        self.epochs_run = epoch
        if self.best_state is None or score > self.best_score:
            self.best_epoch, self.best_score, self.since_best = epoch, score, 0
            self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        else:
            self.since_best += 1

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The best weights and ``{"best_epoch", "best_score", "since_best", "epochs_run"}``."""
        best = self.best_score if math.isfinite(self.best_score) else None
        data = {"best_epoch": self.best_epoch, "best_score": best, "since_best": self.since_best,
                "epochs_run": self.epochs_run}
        return dict(self.best_state or {}), data

    def restore(self, tensors: dict[str, Tensor], data: dict[str, Any]) -> None:
        """Load a checkpoint's selector state (from :meth:`state`)."""
        self.best_state = dict(tensors) or None
        self.best_epoch = int(data.get("best_epoch", 0))
        best = data.get("best_score")
        self.best_score = -math.inf if best is None else float(best)
        self.since_best = int(data.get("since_best", 0))
        self.epochs_run = int(data.get("epochs_run", 0))

    def finish(self) -> dict[str, Any]:
        """Load the best epoch's weights into the module; the ``early_stop`` entry of metrics.json.

        Returns:
            ``{"criterion", "split": "calib", "epoch" (chosen, 1-based), "score", "epochs_run",
            "stopped_early"}`` (``stopped_early``: the patience ran out).
        """
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        score = self.best_score if math.isfinite(self.best_score) else None
        return {"criterion": self.criterion, "split": "calib", "epoch": self.best_epoch, "score": score,
                "epochs_run": self.epochs_run, "stopped_early": self.done}


def calib_scorer(cfg: FinetuneConfig, ds: GeoDataset, model: nn.ModuleDict, ecfg: EvaluateConfig) -> Scorer:
    """The ``cfg.early_stop`` score of the in-memory prior on the ``calib`` split.

    Args:
        cfg: the run config (``early_stop``, ``ratio``).
        ds: the dataset.
        model: ``{"encoder", "head"}``.
        ecfg: the run's evaluation settings (device, batch size, β, calib split name).

    Returns:
        A scorer: ``{"score", "top1", "nll", "mrr", "n"}`` (+ ``fusion`` for ``fused``: β, ε).

    Raises:
        ConfigError: without a labelled calib split, or (``fused``) without image
            probabilities on it; one line.
    """
    calib = calib_split(ds, ecfg)
    name = ecfg.calib_split
    if calib is None or calib.labels is None or not (calib.labels >= 0).any():
        raise ConfigError(f"finetune.early_stop={cfg.early_stop}: the dataset has no labelled '{name}' split to "
                          "choose the epoch on (the reported val split is never used); add one or set "
                          "early_stop=off")
    on_calib = dataclasses.replace(ecfg, split=calib.name)
    if cfg.early_stop == "fused" and eval_probs_key(calib, on_calib, cfg.ratio) is None:
        raise ConfigError(f"finetune.early_stop=fused: split '{name}' has no image probabilities; "
                          "use early_stop=location")
    source: Split | None = calib if cfg.early_stop == "fused" else None

    def logits(x: Tensor) -> Tensor:
        return model["head"](model["encoder"](x))

    def score() -> dict[str, Any]:
        m = evaluate_split(logits, model, calib, len(ds.classes), on_calib, cfg.ratio, source)
        if cfg.early_stop == "fused":
            fused = m["fused_calibrated"]  # scored by the fusion's own criterion (fusion_criterion)
            score = float(fused["top1"]) if cfg.fusion_criterion == "top1" else -float(fused["nll"])
            return {"score": score, **_summary(fused), "fusion": m["fusion"]["calibrated"]}
        loc = m["location"]
        return {"score": -float(loc["nll"]), **_summary(loc)}

    return score


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("top1", "nll", "mrr", "n")}
