"""The blocked metric pass (issue 19 item 1) against a frozen copy of the previous implementation.

``_ref_*`` below is the evaluation as it was before the blocked pass (git 4804c23:
``MetricAccumulator.update`` = ``true_class_rank`` + ``top1_confidence`` + ``row_nll`` +
``calibration_bins`` over whole chunks; ``evaluate_fused`` / ``update_fused`` with
``fused_product64``; ``grid_states`` on group-sorted chunks), kept here as the test oracle.
The new code must give the SAME accumulator states, bit for bit: integer counts, and the
float64 sums of reciprocal ranks, NLLs and bin confidences (``torch.equal``, not a tolerance).
Inputs: several (N, Q), chunk sizes that do not divide N, ties (quantised scores, zeros, rows
of zeros), rows without a location (NaN there), dense / float16 / float64 / sparse image
probabilities, paper and calibrated fusions, and blocks forced small (``BLOCK_ELEMS``).
Scores are NaN-free where they are scored (NaN rows only where ``has_location`` is False).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from geocsp.evaluation import functional, rowstats
from geocsp.evaluation.metrics import MetricAccumulator
from geocsp.evaluation.protocol import evaluate_fused
from geocsp.evaluation.tuning import grid_states
from geocsp.prior.fusion import Fusion, combine_log_scores, prior_log_term

KS = (1, 3, 5, 10)

# --- the oracle: the previous implementation, condensed (same float operations) -------------


def _ref_chunk_state(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...], n_bins: int,
                     log_space: bool, eps: float = 1e-12) -> torch.Tensor:
    """The old ``MetricAccumulator.update`` increment for one chunk."""
    lab = labels[:, None]
    true = scores.gather(1, lab)
    idx = torch.arange(scores.shape[1])
    rank = 1 + (scores > true).sum(1) + ((scores == true) & (idx[None, :] < lab)).sum(1)
    top, pred = scores.max(dim=1)
    if log_space:
        conf = torch.exp(top - torch.logsumexp(scores, dim=1))
        logp = (true - torch.logsumexp(scores, dim=1, keepdim=True)).squeeze(1)
        row_nll = (-logp).clamp(max=-math.log(eps))
    else:
        tiny = torch.finfo(scores.dtype).tiny
        conf = top / scores.sum(dim=1).clamp(min=tiny)
        total = scores.sum(dim=1, keepdim=True).clamp(min=tiny)
        row_nll = -torch.log((true / total).squeeze(1).clamp(min=eps))
    conf = conf.double()
    b = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    bins = torch.zeros(3, n_bins, dtype=torch.float64)
    bins[0].index_add_(0, b, torch.ones_like(conf))
    bins[1].index_add_(0, b, conf)
    bins[2].index_add_(0, b, (pred == labels).double())
    hits = (rank[:, None] <= torch.as_tensor(ks)[None, :]).sum(0).double()
    return torch.cat([torch.tensor([float(scores.shape[0])], dtype=torch.float64), hits,
                      (1.0 / rank.double()).sum()[None], row_nll.double().sum()[None], bins.reshape(-1)])


def _dense(x: Any) -> torch.Tensor:
    """The whole matrix as ``iter_chunks`` densifies each chunk (float16 widened)."""
    if hasattr(x, "toarray"):
        x = x.toarray()
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _ref_fused(img: torch.Tensor, loc: torch.Tensor, has: torch.Tensor, fusion: Fusion) -> tuple[torch.Tensor, bool]:
    """The old ``update_fused`` scores: the float64 product for (1, 0), else log-scores."""
    if fusion.beta == 1.0 and fusion.eps == 0.0:
        prod = loc.to(torch.float64, copy=True)
        prod[~has] = 1.0
        return prod.mul_(img), False
    return fusion.log_scores(img, loc, has), True


def _ref_evaluate_fused(img: Any, loc: Any, labels: np.ndarray, has: np.ndarray,
                        fusions: dict[str, Fusion], batch_size: int, n_bins: int = 15) -> dict[str, torch.Tensor]:
    """The old ``evaluate_fused``: accumulator states per block."""
    img_t, loc_t = _dense(img), _dense(loc)
    lab_t, has_t = torch.as_tensor(labels, dtype=torch.long), torch.as_tensor(has, dtype=torch.bool)
    size = 1 + len(KS) + 2 + 3 * n_bins
    states = {k: torch.zeros(size, dtype=torch.float64) for k in ("image", "location", *fusions)}
    for s in range(0, len(labels), batch_size):
        i, lo, y, h = img_t[s:s + batch_size], loc_t[s:s + batch_size], lab_t[s:s + batch_size], has_t[s:s + batch_size]
        states["image"] = states["image"] + _ref_chunk_state(i, y, KS, n_bins, False)
        if bool(h.any()):
            every = bool(h.all())
            ls, ly = (lo, y) if every else (lo[h], y[h])
            states["location"] = states["location"] + _ref_chunk_state(ls, ly, KS, n_bins, False)
        for name, fusion in fusions.items():
            scores, log_space = _ref_fused(i, lo, h, fusion)
            states[name] = states[name] + _ref_chunk_state(scores, y, KS, n_bins, log_space)
    return states


def _ref_grid_states(img: Any, loc: Any, labels: np.ndarray, has: np.ndarray, points: list[tuple[float, float]],
                     groups: np.ndarray, n_groups: int, ks: tuple[int, ...], n_bins: int,
                     batch_size: int) -> torch.Tensor:
    """The old ``grid_states``: rows sorted by group within each chunk, one update per slice."""
    img_t, loc_t = _dense(img), _dense(loc)
    lab_t, has_t = torch.as_tensor(labels, dtype=torch.long), torch.as_tensor(has, dtype=torch.bool)
    size = 1 + len(ks) + 2 + 3 * n_bins
    out = torch.zeros(n_groups, len(points), size, dtype=torch.float64)
    for s in range(0, len(labels), batch_size):
        i, lo, y, h = img_t[s:s + batch_size], loc_t[s:s + batch_size], lab_t[s:s + batch_size], has_t[s:s + batch_size]
        g = torch.from_numpy(groups[s:s + batch_size])
        counts = torch.bincount(g, minlength=n_groups).tolist()
        if n_groups > 1:
            order = torch.argsort(g, stable=True)
            i, lo, y, h = (t[order] for t in (i, lo, y, h))
        log_img = i.double().log()
        log_prior = {e: prior_log_term(lo, h, e) for e in sorted({float(e) for _, e in points})}
        for p, (beta, eps) in enumerate(points):
            scores = combine_log_scores(log_img, log_prior[float(eps)], beta)
            start = 0
            for grp, cnt in enumerate(counts):
                if cnt:
                    out[grp, p] = out[grp, p] + _ref_chunk_state(scores[start:start + cnt], y[start:start + cnt],
                                                                 ks, n_bins, True)
                start += cnt
    return out


# --- inputs -------------------------------------------------------------------------------


def _case(n: int, q: int, seed: int, *, ties: bool, missing: float) -> tuple[np.ndarray, ...]:
    """Image probs (sparse-ish, renormalised), prior probs with NaN rows, labels, has."""
    rng = np.random.default_rng(seed)
    img = rng.random((n, q)).astype(np.float32) ** 4
    img[rng.random((n, q)) < 0.7] = 0.0  # many exact zeros: ties at 0, often at the true class
    img[rng.random(n) < 0.05] = 0.0  # whole rows of zeros (row sum clamped to tiny)
    if ties:
        img = np.round(img * 8) / 8  # few distinct values: ties everywhere
    img = (img / np.maximum(img.sum(1, keepdims=True), 1e-30)).astype(np.float32)
    loc = rng.random((n, q)).astype(np.float32)
    if ties:
        loc = (np.round(loc * 4) / 4).astype(np.float32)
    loc[rng.random((n, q)) < 0.1] = 0.0
    has = rng.random(n) >= missing
    loc[~has] = np.nan
    labels = rng.integers(0, q, n)
    return img, loc, labels, has


FUSIONS = {"fused": Fusion("paper", 1.0), "fused-b05": Fusion("paper", 0.5), "fused-b0": Fusion("paper", 0.0),
           "fused-cal": Fusion("calibrated", 0.7, 0.01), "fused-cal1": Fusion("calibrated", 1.0, 0.2)}


def _same(got: dict[str, dict[str, Any]], ref_states: dict[str, torch.Tensor], n_bins: int = 15) -> None:
    for key, state in ref_states.items():
        want = MetricAccumulator.from_state(state, KS, n_bins).compute()
        assert set(got[key]) == set(want), key
        for m, v in want.items():
            g = got[key][m]
            assert (math.isnan(g) and math.isnan(v)) or g == v, (key, m, g, v)  # exact


def _equal(got: torch.Tensor, want: torch.Tensor) -> None:
    """Bit-for-bit equal states (NaN where the old code gave NaN, e.g. all -inf log rows)."""
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest) -> Any:
    """torch's intra-op threads during the test (the blocked pass runs serially either way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(params=[None, 64], ids=["default-blocks", "tiny-blocks"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default block size, and blocks of a few rows (so every case is cut into many blocks)."""
    if request.param is not None:
        monkeypatch.setattr(rowstats, "BLOCK_ELEMS", request.param)
        monkeypatch.setattr(rowstats, "MIN_BLOCK_ROWS", 2)


@pytest.mark.parametrize(("n", "q", "batch", "ties", "missing"), [
    (1, 5, 7, False, 0.0),
    (37, 3, 10, True, 0.3),
    (200, 50, 64, True, 0.2),
    (333, 129, 100, False, 0.01),
    (150, 1100, 41, True, 0.5),
    (90, 20, 1000, False, 1.0),  # no row has a location
])
def test_evaluate_fused_is_the_old_pass(blocks: None, threads: int, n: int, q: int, batch: int, ties: bool,
                                        missing: float) -> None:
    img, loc, labels, has = _case(n, q, n + q, ties=ties, missing=missing)
    got = evaluate_fused(img, loc, labels, has, FUSIONS, batch_size=batch)
    assert torch.get_num_threads() == threads  # the serial block pass restores the count
    _same(got, _ref_evaluate_fused(img, loc, labels, has, FUSIONS, batch))


@pytest.mark.parametrize("kind", ["sparse", "float16", "float64", "tensor"])
def test_input_types_are_the_old_pass(blocks: None, kind: str) -> None:
    img, loc, labels, has = _case(120, 77, 5, ties=True, missing=0.1)
    conv: dict[str, Any] = {"sparse": sp.csr_matrix, "float16": lambda a: a.astype(np.float16),
                            "float64": lambda a: a.astype(np.float64), "tensor": torch.from_numpy}
    img_in = conv[kind](img)
    fusions = {"fused": FUSIONS["fused"], "fused-cal": FUSIONS["fused-cal"]}
    got = evaluate_fused(img_in, loc, labels, has, fusions, batch_size=33)
    _same(got, _ref_evaluate_fused(img_in, loc, labels, has, fusions, 33))


def test_one_located_row_per_chunk_two_threads() -> None:
    """A chunk whose only located row is reduced alone (rows longer than a grain, 2 threads)."""
    img, loc, labels, has = _case(12, 40_000, 3, ties=False, missing=0.0)
    has[:] = False
    has[[2, 7]] = True
    loc[~has] = np.nan
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = evaluate_fused(img, loc, labels, has, {"fused": FUSIONS["fused"]}, batch_size=5)
        _same(got, _ref_evaluate_fused(img, loc, labels, has, {"fused": FUSIONS["fused"]}, 5))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("log_space", [False, True])
def test_accumulator_update_is_the_old_increment(blocks: None, log_space: bool) -> None:
    img, _, labels, _ = _case(301, 64, 9, ties=True, missing=0.0)
    scores = torch.from_numpy(img).double()
    if log_space:
        scores = scores.log()  # -inf at the zeros: ties at -inf
    acc = MetricAccumulator(KS, 7)
    acc.update(scores, torch.from_numpy(labels), log_space=log_space)
    _equal(acc.state(), _ref_chunk_state(scores, torch.from_numpy(labels), KS, 7, log_space))


def test_true_class_rank_is_the_old_rank(blocks: None) -> None:
    img, _, labels, _ = _case(257, 31, 11, ties=True, missing=0.0)
    s, y = torch.from_numpy(img), torch.from_numpy(labels)
    idx = torch.arange(s.shape[1])
    true = s.gather(1, y[:, None])
    want = 1 + (s > true).sum(1) + ((s == true) & (idx[None, :] < y[:, None])).sum(1)
    assert torch.equal(functional.true_class_rank(s, y), want)


@pytest.mark.parametrize(("n_groups", "batch"), [(1, 64), (3, 50), (5, 7)])
def test_grid_states_are_the_old_pass(blocks: None, threads: int, n_groups: int, batch: int) -> None:
    img, loc, labels, has = _case(180, 45, 21, ties=True, missing=0.15)
    points = [(0.0, 0.0), (1.0, 0.0), (0.5, 0.0), (1.0, 0.01), (2.0, 0.3), (0.25, 1.0)]
    groups = np.random.default_rng(2).integers(0, n_groups, len(labels))
    got = grid_states(img, loc, labels, has, points, groups=groups, n_groups=n_groups, ks=(1, 3), n_bins=4,
                      batch_size=batch)
    want = _ref_grid_states(img, loc, labels, has, points, groups, n_groups, (1, 3), 4, batch)
    _equal(got, want)
