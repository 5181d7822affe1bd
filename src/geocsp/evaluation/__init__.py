"""Evaluation: metric functions, the image / location / fused protocol (spec §6), fusion fitting."""

from geocsp.evaluation.calibration import fit_fusion
from geocsp.evaluation.functional import ece, mrr, nll, topk_accuracy, true_class_rank
from geocsp.evaluation.metrics import METRIC_KEYS, MetricAccumulator, iter_chunks
from geocsp.evaluation.protocol import evaluate_fused, evaluate_scores
from geocsp.evaluation.tuning import DEFAULT_BETA_GRID, tune_beta

__all__ = [
    "DEFAULT_BETA_GRID",
    "METRIC_KEYS",
    "MetricAccumulator",
    "ece",
    "evaluate_fused",
    "evaluate_scores",
    "fit_fusion",
    "iter_chunks",
    "mrr",
    "nll",
    "topk_accuracy",
    "true_class_rank",
    "tune_beta",
]
