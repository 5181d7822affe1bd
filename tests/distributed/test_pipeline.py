"""geocsp.training under 2 real ranks (the pool) vs one process with the same global batch."""

from __future__ import annotations

import json
import shutil

import pytest

from . import _pipeline
from ._pipeline import assert_metrics_close

B = 8  # per rank; the single-process reference uses 2B


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(_pipeline.make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data"))


@pytest.fixture(scope="module")
def single(tiny, tmp_path_factory):
    return _pipeline.run_pipeline(tiny, str(tmp_path_factory.mktemp("single")), 2 * B)


@pytest.fixture(scope="module")
def ranked(pool, tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("ranked")
    return root, pool.run(_pipeline.pool_pipeline, tiny, str(root), B)


def test_two_ranks_match_one_process_with_the_global_batch(single, ranked):
    root, out = ranked
    assert out[0] == out[1]  # every rank returns the reduced metrics
    got = out[0]
    # float32 training, different summation order (per-rank partial batches, DDP averaging): 1e-4
    assert_metrics_close(got["pretrain"], single["pretrain"], rel=1e-4)
    assert_metrics_close(got["finetune"], single["finetune"], rel=1e-4)
    assert got["finetune"]["fused"]["n"] == _pipeline.N_VAL
    assert got["finetune"]["location"]["n"] == _pipeline.N_VAL - 2
    assert json.loads((root / "finetune" / "metrics.json").read_text()) == got["finetune"]
    log = [json.loads(x) for x in (root / "pretrain" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]  # rank 0 alone logged, once per epoch
    assert all(r["samples"] == _pipeline.N_TRAIN for r in log)  # summed over the ranks


def test_resume_under_two_ranks(pool, tiny, ranked, tmp_path):
    """Interrupted after epoch 1 (latest -> epoch-0001, log truncated): a rerun on the ranks
    finishes epoch 2 and ends where the uninterrupted run did."""
    root, out = ranked
    run = tmp_path / "pretrain"
    shutil.copytree(root / "pretrain", run)
    shutil.rmtree(run / "encoder")
    (run / "metrics.json").unlink()
    (run / "checkpoints" / "latest").write_text("epoch-0001\n")
    shutil.rmtree(run / "checkpoints" / "epoch-0002")
    again = pool.run(_pipeline.resume_pretrain, tiny, str(tmp_path), B)
    assert_metrics_close(again[0], out[0]["pretrain"], rel=1e-6)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
