"""Real processes (2 gloo ranks, DDP) against one process holding the global batch."""

from __future__ import annotations

import numpy as np
import pytest

from . import _cases
from ._cases import B


def test_pool_ranks_see_the_job(pool):
    out = pool.run(_cases.describe)
    assert [o["rank"] for o in out] == [0, 1]
    assert [o["main"] for o in out] == [True, False]
    assert [o["is_main_process"] for o in out] == [True, False]
    assert [o["ctx"] for o in out] == [(0, 2), (1, 2)]
    assert out[0]["seed"] != out[1]["seed"]
    assert {o["device"] for o in out} == {"cpu"}


def test_all_gather_forward_concatenates_and_backward_sums_columns(pool):
    rows, k = 3, 2
    out = pool.run(_cases.gather_grad, rows, k)
    xs = [o["x"] for o in out]
    assert not np.array_equal(xs[0], xs[1])
    for o in out:
        np.testing.assert_array_equal(o["gathered"], np.concatenate(xs, 0))
    w = _cases.gather_weights(2, rows, k)
    for r, o in enumerate(out):
        # d(sum_s sum(w_s * gathered))/dx_r: rank r's slice of every rank's weights, summed
        expected = sum(ws[r * rows : (r + 1) * rows] for ws in w)
        np.testing.assert_allclose(o["grad"], expected, rtol=1e-12)
        assert not np.allclose(o["grad"], w[r][r * rows : (r + 1) * rows])  # not just the own term


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("csp-mc-bld", {"num_negatives": _cases.C, "tau_inbatch": 0.5, "tau_simcse": 0.7}),
        ("clip", {}),
    ],
)
def test_ddp_two_ranks_equal_single_process_global_batch(pool, name, overrides):
    ref = _cases.single_objective_step(name, overrides, world=2)
    out = pool.run(_cases.ddp_objective_step, name, overrides)
    assert abs(out[0]["local"] - out[1]["local"]) > 1e-6  # the ranks really see different rows
    for o in out:
        assert o["mean"] == pytest.approx(ref["loss"], rel=1e-10)
    assert set(ref["grads"]) == set(out[0]["grads"])
    assert any(k.startswith("encoder.") for k in ref["grads"])
    for key, g in ref["grads"].items():
        assert np.abs(g).max() > 0, key  # every trained parameter really gets a gradient
        for o in out:  # DDP averaged the ranks' gradients into the global-batch gradient
            np.testing.assert_allclose(o["grads"][key], g, rtol=1e-5, atol=1e-12 * np.abs(g).max())
            np.testing.assert_allclose(o["params"][key], ref["params"][key], rtol=1e-5, atol=1e-12)


def test_local_only_columns_differ_from_global_batch(pool):
    """Control: without the gather (each rank's own columns, the SatCLIP/TaxaBind way) the
    loss and gradients are not those of the global batch, so the test above can fail."""
    ref = _cases.single_objective_step("clip", {}, world=2)
    out = pool.run(_cases.ddp_objective_step, "clip", {}, False)
    assert abs(out[0]["mean"] - ref["loss"]) > 1e-3
    g_ref, g = ref["grads"]["projection.weight"], out[0]["grads"]["projection.weight"]
    assert np.abs(g - g_ref).max() > 1e-3 * np.abs(g_ref).max()


@pytest.mark.parametrize("n", [13, 2 * B])
def test_sharded_metrics_equal_single_process(pool, n):
    import torch

    from geocsp.evaluation.metrics import MetricAccumulator

    rng = np.random.default_rng(n)
    scores = rng.dirichlet(np.ones(7), size=n)
    labels = rng.integers(0, 7, size=n)
    acc = MetricAccumulator()
    acc.update(torch.from_numpy(scores), torch.from_numpy(labels))
    single = acc.compute()
    for got in pool.run(_cases.metric_shard, scores, labels):
        assert got.keys() == single.keys()
        for key in ("n", "top1", "top3", "top5", "top10"):  # integer counts: exact
            assert got[key] == single[key], key
        for key in ("mrr", "nll", "ece"):  # float64 sums: equal up to summation order
            assert got[key] == pytest.approx(single[key], rel=1e-12, abs=1e-15), key


def test_sharded_protocol_equals_evaluate_scores(pool):
    from geocsp.evaluation import evaluate_scores

    rng = np.random.default_rng(1)
    n, q = 13, 6
    img = rng.dirichlet(np.ones(q), size=n)
    loc = rng.uniform(size=(n, q))
    has = rng.uniform(size=n) > 0.3
    loc[~has] = np.nan  # missing locations: ignored by location, image-only in fused
    labels = rng.integers(0, q, size=n)
    single = evaluate_scores(img, loc, labels, has, beta=0.5, batch_size=4)
    out = pool.run(_cases.sharded_protocol, img, loc, labels, has, 0.5)
    np.testing.assert_array_equal(np.concatenate([o["rows"] for o in out]), np.arange(n))
    assert [o["rank_world"] for o in out] == [(0, 2), (1, 2)]
    for o in out:
        for block, m in single.items():
            got = o["metrics"][block]
            assert got.keys() == m.keys()
            for key, value in m.items():
                if key in ("n", "top1", "top3", "top5", "top10"):
                    assert got[key] == value, (block, key)
                else:
                    assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (block, key)


def test_main_first_lets_rank0_write_before_others_read(pool, tmp_path):
    out = pool.run(_cases.main_first_order, str(tmp_path / "f.txt"))
    assert out == ["written by 0", "written by 0"]


def test_sum_over_ranks(pool):
    assert pool.run(_cases.summed) == [{"a": 4.5, "b": 4.0}] * 2
