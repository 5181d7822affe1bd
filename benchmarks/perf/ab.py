"""Interleaved before/after comparisons of the issue-6 changes, in ONE process.

On a shared machine whose load swings 2x within a minute, separate runs cannot be
compared; here the variants alternate block by block (A B A B ...) and the result is the
median over blocks of the per-block time ratio before / after.

"before" is the code at git HEAD (``--before DIR``: a copy of HEAD's ``src``, e.g.
``git archive HEAD src | tar -x -C DIR``), loaded under private module names; "after" is
the installed geocsp.

    python benchmarks/perf/ab.py --before /tmp/geocsp_before/src [--threads 1] [--blocks 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import steps


def load_old(src: Path, rel: str, name: str, renames: dict[str, str] | None = None) -> Any:
    """Load HEAD's ``src/<rel>`` as module ``name``, rewriting imports per ``renames``."""
    text = (src / rel).read_text()
    for a, b in (renames or {}).items():
        text = text.replace(a, b)
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    exec(compile(text, str(src / rel), "exec"), mod.__dict__)
    return mod


def interleave(a: Callable[[], Any], b: Callable[[], Any], blocks: int, calls: int) -> dict[str, float]:
    """Median seconds per call of each and the median per-block ratio a / b."""
    for f in (a, b):
        f()
    ta, tb = [], []
    for _ in range(blocks):
        for f, acc in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            acc.append((time.perf_counter() - t0) / calls)
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    return {"before_s": statistics.median(ta), "after_s": statistics.median(tb),
            "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios)}


def ab_dropout(blocks: int) -> dict[str, float]:
    """Pre-training step (batch 1024): torch's nn.Dropout vs the 15-bit-mask Dropout."""
    ffn = importlib.import_module("geocsp.nets.ffn")
    split = steps.synthetic_split(16_384, 2048, 8142)
    fast = ffn.Dropout
    ffn.Dropout = nn.Dropout  # type: ignore[misc]
    try:
        before = steps.pretrain_stepper(split, 1024, torch.device("cpu"), "fp32", False)
    finally:
        ffn.Dropout = fast  # type: ignore[misc]
    after = steps.pretrain_stepper(split, 1024, torch.device("cpu"), "fp32", False)
    return interleave(before, after, blocks, 2)


def _old_full_forward(self: Any, logits: torch.Tensor, labels: torch.Tensor, bg_logits: torch.Tensor) -> Any:
    """HEAD's FullLoss.forward (hard negatives), verbatim."""
    from geocsp.objectives.functional import neg_log
    from geocsp.objectives.presence import negative_term
    from geocsp.objectives.types import LossOutput

    c = self.config
    w = float(logits.shape[1]) if c.pos_weight is None else c.pos_weight
    neg = negative_term(logits, c.negatives)
    ar = torch.arange(logits.shape[0], device=logits.device)
    pos = w * neg_log(torch.sigmoid(logits[ar, labels])) - neg[ar, labels]
    presence = (neg.sum() + pos.sum()) / neg.numel()
    terms = {"presence": presence, "background": negative_term(bg_logits, c.negatives).mean()}
    return LossOutput(presence + c.bg_weight * terms["background"], terms)


def _old_finetune_step(model: nn.ModuleDict, rows: Any, loss: nn.Module, sampler: Any) -> Callable[..., Any]:
    """HEAD's fine-tune step: one head call on [x; bg], logits sliced."""
    enc, head = model["encoder"], model["head"]

    def step(idx: torch.Tensor, gen: torch.Generator) -> Any:
        x, y = rows.lonlat[idx], rows.labels[idx]
        bg = sampler.sample(x.shape[0], gen)
        logits = head(enc(torch.cat([x, bg], 0)))
        return _old_full_forward(loss, logits[: x.shape[0]], y, logits[x.shape[0]:])

    return step


def ab_finetune(blocks: int) -> dict[str, float]:
    """Fine-tuning step (batch 1024, Q = 8,142): HEAD's loss + sliced logits vs fused."""
    ft = importlib.import_module("geocsp.training.finetune")  # the package re-exports finetune()
    split = steps.synthetic_split(22_000, 0, 8142)
    dev = torch.device("cpu")
    after = steps.finetune_stepper(split, 8142, 1024, dev, "fp32", False)
    real = ft.make_step
    ft.make_step = lambda m, r, lo, s, c, info=None: _old_finetune_step(m, r, lo, s)  # type: ignore[assignment]
    try:
        before = steps.finetune_stepper(split, 8142, 1024, dev, "fp32", False)
    finally:
        ft.make_step = real
    return interleave(before, after, blocks, 1)


def ab_metrics(src: Path, blocks: int, rows: int) -> dict[str, float]:
    """evaluate_scores over rows x 8,142: HEAD's functional/fusion/protocol vs now."""
    from geocsp.evaluation import evaluate_scores

    ren = {"geocsp.evaluation.functional": "old_functional", "geocsp.evaluation.metrics": "old_metrics",
           "geocsp.prior.fusion": "old_fusion"}
    load_old(src, "geocsp/evaluation/functional.py", "old_functional")
    load_old(src, "geocsp/prior/fusion.py", "old_fusion")
    load_old(src, "geocsp/evaluation/metrics.py", "old_metrics", ren)  # else HEAD's protocol uses today's
    old = load_old(src, "geocsp/evaluation/protocol.py", "old_protocol", ren)
    loc, _ = steps.evaluation_runner(rows, 8142, torch.device("cpu"), "fp32")
    lp = loc()
    img = steps._topk_probs(rows, 8142, 100)
    labels = np.random.default_rng(5).integers(0, 8142, rows)
    has = ~np.isnan(lp).any(1)
    ref = old.evaluate_scores(img, lp, labels, has)
    new = evaluate_scores(img, lp, labels, has)
    same = all(abs(ref[k][m] - new[k][m]) <= 1e-9 * max(1.0, abs(ref[k][m]))
               for k in ref for m in ref[k] if not np.isnan(ref[k][m]))
    res = interleave(lambda: old.evaluate_scores(img, lp, labels, has),
                     lambda: evaluate_scores(img, lp, labels, has), blocks, 1)
    return {**res, "metrics_identical_1e-9": same}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, type=Path, help="HEAD's src directory")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--eval-rows", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {"threads": a.threads, "blocks": a.blocks}
    for name, fn in (("dropout (pretrain step, B=1024)", lambda: ab_dropout(a.blocks)),
                     ("fused full loss (finetune step, B=1024)", lambda: ab_finetune(a.blocks)),
                     (f"metrics ({a.eval_rows} x 8142)", lambda: ab_metrics(a.before, a.blocks, a.eval_rows))):
        out[name] = fn()
        print(name, json.dumps(out[name]), flush=True)
    if a.out:
        a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
