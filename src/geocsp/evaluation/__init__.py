"""Evaluation: pure metric functions and the image / location / fused protocol (spec §6)."""

from geocsp.evaluation.functional import ece, mrr, nll, topk_accuracy, true_class_rank
from geocsp.evaluation.protocol import MetricAccumulator, evaluate_scores

__all__ = [
    "MetricAccumulator",
    "ece",
    "evaluate_scores",
    "mrr",
    "nll",
    "topk_accuracy",
    "true_class_rank",
]
