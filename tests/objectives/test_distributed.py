"""Two ranks simulated in one process: local rows x gathered columns equal the global batch.

Each rank runs in its own thread; ``gather`` exchanges the ranks' tensors at a barrier and
returns their concatenation, keeping autograd through every rank's piece (what
``torch.distributed.nn.all_gather`` + DDP gradient averaging amount to). The mean of the
two ranks' losses must equal the single-process loss, and so must its gradients.
"""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from geocsp.objectives import DistContext, PretrainBatch, create_objective

from ._helpers import RecordingEncoder, make_batch

B, D, DIM, C, WORLD = 8, 5, 6, 2, 2


def _rank_losses(obj, batch, enc, w):
    barrier = threading.Barrier(WORLD)
    slots: list = [None] * WORLD
    losses: list = [None] * WORLD
    errors: list = []
    local = B // WORLD

    def gather_for(rank):
        def gather(t):
            slots[rank] = t
            barrier.wait()
            out = torch.cat(list(slots), 0)
            barrier.wait()  # both ranks have read before anyone overwrites a slot
            return out

        return gather

    def work(rank):
        sl = slice(rank * local, (rank + 1) * local)
        neg = None if batch.neg_lonlat is None else batch.neg_lonlat[sl]
        part = PretrainBatch(batch.lonlat[sl], batch.feats[sl], neg)
        try:
            losses[rank] = obj(part, enc, w, DistContext(gather_for(rank), rank, WORLD)).total
        except BaseException as e:  # surface thread errors in the test
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(WORLD)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return losses


def _grads(params):
    out = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return out


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("csp-mc-bld", {"tau_inbatch": 0.5, "num_negatives": C}),
        ("csp-mc-bld-sym", {"num_negatives": C, "simcse_weight": 0.5}),
        ("csp-nce-bld", {"num_negatives": C}),
        ("clip", {}),
    ],
)
def test_two_ranks_equal_single_batch(name, overrides):
    torch.manual_seed(0)
    enc = RecordingEncoder(d=DIM, dropout=0.0).double()  # dropout off: passes are identical
    w = nn.Linear(D, DIM).double()
    obj = create_objective(name, loc_dim=DIM, img_dim=D, **overrides).double()
    b = make_batch(B, D, obj.num_negatives, seed=5)  # negatives fixed in the batch
    batch = PretrainBatch(
        b.lonlat.double(), b.feats.double(), None if b.neg_lonlat is None else b.neg_lonlat.double()
    )
    params = [*enc.parameters(), *w.parameters(), *obj.parameters()]

    single = obj(batch, enc, w).total
    single.backward()
    g_single = _grads(params)

    losses = _rank_losses(obj, batch, enc, w)
    assert abs(losses[0].item() - losses[1].item()) > 1e-6  # the ranks really see different rows
    mean = (losses[0] + losses[1]) / WORLD
    mean.backward()
    g_dist = _grads(params)

    assert mean.item() == pytest.approx(single.item(), rel=1e-10)
    for gs, gd in zip(g_single, g_dist, strict=True):
        torch.testing.assert_close(gd, gs, rtol=1e-5, atol=1e-12)
