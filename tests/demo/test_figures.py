"""The figure's class rule and the figures drawn from data passed in (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from geocsp.demo.figures import bar_figure, choose_class, gain_figure, zero_shot_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_choose_class_rule() -> None:
    counts = np.array([500, 100, 50, 60, 55, 2, 3, 52, 58])
    range_km = np.array([1000, 1000, 300, 900, 1000, 1000, 1000, 3000, 1100], dtype=float)
    weights = np.array([[1.0, 0, 0]] * 9)
    weights[4] = [0.5, 0.3, 0.2]  # two-population range: not distinct
    # middle third of counts: 52..60 -> classes 2, 3, 4, 7, 8; 4 fails the weight test;
    # median range 1000 km -> class 3 (900) vs 8 (1100): |log| distance 0.105 vs 0.095 -> 8
    assert choose_class(counts, range_km, weights) == 8


def test_zero_shot_scores_are_cosines() -> None:
    class Identity(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    weight = np.array([[1.0, 0.0], [0.0, 2.0]])
    feats = np.array([[1.0, 0.0], [1.0, 0.0]])  # mean (1, 0) -> W·f̄ = (1, 0)
    pts = np.array([[10.0, 0.0], [0.0, 10.0], [-5.0, 0.0]])
    got = zero_shot_scores(Identity(), weight, None, feats, pts)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, [1.0, 0.0, -1.0], atol=1e-9)
    shifted = zero_shot_scores(Identity(), weight, np.array([-1.0, 1.0]), feats, pts)  # type: ignore[arg-type]
    np.testing.assert_allclose(shifted, [0.0, 1.0, 0.0], atol=1e-9)


def test_bar_and_gain_figures(tmp_path: Path) -> None:
    rows = [{"method": m, "ratio": q, "top1_mean": t, "top1_std": 0.01, "top3_mean": t + 0.1,
             "mrr_mean": t + 0.05, "seeds": [t], "seed_ids": [0]}
            for m, base in (("Sup. Only (grid)", 0.4), ("CSP-MC-BLD", 0.45)) for q, t in ((0.1, base), (1.0, base + 0.3))]
    for path in (bar_figure(rows, tmp_path / "table.png", "title"), gain_figure(rows, "Sup. Only (grid)", tmp_path / "gain.png")):
        assert path.read_bytes().startswith(PNG_MAGIC)
