"""evaluate against independent float64 NumPy computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geocsp.errors import DatasetError
from geocsp.training import evaluate


def test_evaluate_matches_numpy_metrics(numpy_loc_probs, dataset, ft_run: Path) -> None:
    m = evaluate(ft_run, dataset)
    assert m == json.loads((ft_run / "metrics.json").read_text())
    assert m["probs_key"] == "ratio0.100"
    val = dataset.split("val")
    rows = np.flatnonzero(val.labels >= 0)
    img = val.probs("ratio0.100")[rows].astype(np.float64)
    has = val.has_location[rows]
    loc = np.ones_like(img)
    loc[has] = numpy_loc_probs(ft_run, val.lonlat[rows][has])
    y = val.labels[rows]
    fused = img * loc
    top1 = float(np.mean(fused.argmax(1) == y))
    rank = 1 + (fused > fused[np.arange(len(y)), y][:, None]).sum(1)
    assert m["fused"]["top1"] == pytest.approx(top1, abs=1.5 / len(y))
    assert m["fused"]["mrr"] == pytest.approx(np.mean(1.0 / rank), abs=1e-3)
    loc_top1 = float(np.mean(loc[has].argmax(1) == y[has]))
    assert m["location"]["top1"] == pytest.approx(loc_top1, abs=1.5 / has.sum())
    assert m["location"]["n"] == int(has.sum()) and m["image"]["n"] == len(y)


def test_evaluate_beta_tune_and_other_split_file(dataset, ft_run: Path) -> None:
    m = evaluate(ft_run, dataset, split="val", probs_key="default", beta="tune")
    assert m["probs_key"] == "default" and m["beta"] in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    with pytest.raises(DatasetError, match="has no probabilities 'nope'"):
        evaluate(ft_run, dataset, probs_key="nope")
