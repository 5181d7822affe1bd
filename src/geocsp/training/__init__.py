"""Pre-training, fine-tuning, evaluation, prediction and embedding (spec §4–§6).

Each function takes a typed config (or plain arguments), a dataset and a run directory;
rerunning on the same run directory resumes. See docs/training.md.
"""

from geocsp.checkpoints import load_encoder, load_prior
from geocsp.training.config import (
    ComponentConfig,
    DataConfig,
    EvaluateConfig,
    FinetuneConfig,
    OptimConfig,
    PretrainConfig,
    ProjectionConfig,
)
from geocsp.training.embedding import embed
from geocsp.training.evaluate import evaluate
from geocsp.training.finetune import finetune
from geocsp.training.inference import predict
from geocsp.training.presets import PRESETS, list_presets, load_preset, resolve_config
from geocsp.training.pretrain import pretrain
from geocsp.training.rundir import RunDir

__all__ = [
    "PRESETS",
    "ComponentConfig",
    "DataConfig",
    "EvaluateConfig",
    "FinetuneConfig",
    "OptimConfig",
    "PretrainConfig",
    "ProjectionConfig",
    "RunDir",
    "embed",
    "evaluate",
    "finetune",
    "list_presets",
    "load_encoder",
    "load_preset",
    "load_prior",
    "predict",
    "pretrain",
    "resolve_config",
]
