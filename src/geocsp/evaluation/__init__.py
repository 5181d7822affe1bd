"""Evaluation: pure metric functions and the image / location / fused protocol (spec §6)."""

from geocsp.evaluation.functional import ece, mrr, nll, topk_accuracy, true_class_rank
from geocsp.evaluation.metrics import METRIC_KEYS, MetricAccumulator, iter_chunks
from geocsp.evaluation.protocol import evaluate_scores
from geocsp.evaluation.tuning import DEFAULT_BETA_GRID, tune_beta

__all__ = [
    "DEFAULT_BETA_GRID",
    "METRIC_KEYS",
    "MetricAccumulator",
    "ece",
    "evaluate_scores",
    "iter_chunks",
    "mrr",
    "nll",
    "topk_accuracy",
    "true_class_rank",
    "tune_beta",
]
