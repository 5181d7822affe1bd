"""AUC/AP against scikit-learn, with ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from geocsp.sdm.metrics import auc_roc, average_precision, per_species_scores, summarize


@pytest.mark.parametrize("seed", range(5))
def test_auc_ap_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 6, 200).astype(float)  # many ties
    assert auc_roc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_single_class_gives_nan_and_summary_skips_it() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5]])
    per = per_species_scores(y, s, ["a", "b"])
    assert per["a"]["auc"] == 1.0 and np.isnan(per["b"]["auc"])
    summ = summarize(per)
    assert summ["mean_auc"] == 1.0 and summ["n_species_scored"] == 1 and summ["n_species"] == 2
