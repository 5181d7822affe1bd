"""Issue 19 item 1: the evaluation's roofline ratio, before/after, interleaved in ONE process.

    python benchmarks/eval_roofline.py [--threads 1,2] [--rounds 5] [--rows 24426]
                                       [--before-rev 4804c23] [--grid-rows 2048] [--out FILE]

Item 3 of benchmarks/run.py at the iNat2018 val shape (24,426 x 8,142): P(y|x) of the
``paper-inat2018`` prior (``training.inference.location_probs``, batches of 4,096) plus
``evaluate_scores`` (image / location / fused top-1/3/5/10, MRR, NLL, ECE). "before" is the
evaluation code of git revision ``--before-rev`` (its ``src/geocsp/evaluation`` and
``src/geocsp/prior``, extracted with ``git archive`` and loaded under private names); "after"
is the installed geocsp. Each round times P(y|x), both metric passes (order alternating
round by round) and the reference product (4096, 256) @ (256, 8142) into a preallocated
output; roofline = (P(y|x) FLOPs / (P(y|x) + metrics time)) / (reference FLOP/s of the same
round), median over rounds with min-max. The metrics of both variants are compared exactly
(``==`` on every number). ``--grid-rows N`` also times ``grid_states`` over the default
61-point calibration grid (``fit_fusion``'s) on N rows, before vs after (first thread count).
Each round also times "streamed": the whole evaluation as ``geocsp evaluate`` now runs it,
P(y|x) computed chunk by chunk inside the metric pass
(``training.evaluate.StreamedLocationProbs``, never the (N, Q) array), its metrics compared
exactly with "after". Benchmarks never assert timings; this prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from perf import flops, measure, steps  # noqa: E402
from perf.ab import load_old  # noqa: E402

Q = steps.INAT["num_classes"]


def old_modules(rev: str, tmp: Path) -> dict[str, Any]:
    """The evaluation + fusion modules of git revision ``rev``, loaded as ``old_*``."""
    root = HERE.parent
    tar = subprocess.run(["git", "archive", rev, "src/geocsp/evaluation", "src/geocsp/prior"],
                         cwd=root, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=tar, check=True)
    src = tmp / "src"
    ren = {"geocsp.evaluation.functional": "old_functional", "geocsp.evaluation.metrics": "old_metrics",
           "geocsp.prior.fusion": "old_fusion"}
    load_old(src, "geocsp/evaluation/functional.py", "old_functional")
    load_old(src, "geocsp/prior/fusion.py", "old_fusion")
    load_old(src, "geocsp/evaluation/metrics.py", "old_metrics", ren)
    return {"protocol": load_old(src, "geocsp/evaluation/protocol.py", "old_protocol", ren),
            "tuning": load_old(src, "geocsp/evaluation/tuning.py", "old_tuning", ren)}


def same(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> bool:
    """Every metric equal (NaN == NaN)."""
    return a.keys() == b.keys() and all(
        a[k].keys() == b[k].keys()
        and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in ((a[k][m], b[k][m]) for m in a[k]))
        for k in a)


def med(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def run_threads(threads: int, a: argparse.Namespace, old: dict[str, Any]) -> dict[str, Any]:
    """Interleaved rounds at one thread count."""
    from geocsp.evaluation import evaluate_scores

    torch.set_num_threads(threads)
    dev = torch.device("cpu")
    from geocsp.training.evaluate import StreamedLocationProbs

    loc_fn, _ = steps.evaluation_runner(a.rows, Q, dev, "fp32")
    img = steps._topk_probs(a.rows, Q, 100)
    lp = loc_fn()
    labels = np.random.default_rng(5).integers(0, Q, a.rows)
    has = ~np.isnan(lp).any(1)
    ref, ref_flops = measure.matmul_call(*flops.dominant_matmul("evaluate", flops.Shapes(), 4096), dev, "fp32")
    work = flops.evaluation(flops.Shapes(), a.rows).total
    variants = {"before": lambda: old["protocol"].evaluate_scores(img, lp, labels, has),
                "after": lambda: evaluate_scores(img, lp, labels, has)}
    identical = same(variants["before"](), variants["after"]())  # also the warm-up

    def streamed() -> Any:  # a lazy P(y|x) of the same prior, computed inside the metric pass
        return evaluate_scores(img, loc_fn(StreamedLocationProbs), labels, has)

    variants["stream"] = streamed
    stream_identical = same(streamed(), variants["after"]())
    names = ["loc", "stream", "before", "after", "ref"]
    loc_fn()
    ref()
    t: dict[str, list[float]] = {k: [] for k in names}
    load = [Path("/proc/loadavg").read_text().split()[0]]
    for r in range(a.rounds):
        order = names if r % 2 == 0 else [names[-2], *names[1:-2][::-1], names[0], names[-1]]
        for name in order:
            fn = {"loc": loc_fn, "ref": ref}.get(name) or variants[name]
            t0 = time.perf_counter()
            fn()
            t[name].append(time.perf_counter() - t0)
        load.append(Path("/proc/loadavg").read_text().split()[0])
        print(f"  threads {threads} round {r}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in t.items()), flush=True)
    out: dict[str, Any] = {"threads": threads, "rows": a.rows, "classes": Q, "rounds": a.rounds,
                           "metrics_identical": identical, "loadavg_1min_per_round": load,
                           "prior_s": med(t["loc"]), "ref_gflop_per_s": med([ref_flops / x / 1e9 for x in t["ref"]])}
    for v in ("before", "after"):
        ratios = [work / (tl + tm) / (ref_flops / tr) for tl, tm, tr in zip(t["loc"], t[v], t["ref"], strict=True)]
        out[v] = {"metrics_s": med(t[v]), "total_s": med([x + y for x, y in zip(t["loc"], t[v], strict=True)]),
                  "roofline": med(ratios)}
    out["metrics_speedup"] = med([b / f for b, f in zip(t["before"], t["after"], strict=True)])
    out["streamed"] = {"identical": stream_identical, "total_s": med(t["stream"]),
                       "roofline": med([work / ts / (ref_flops / tr) for ts, tr in zip(t["stream"], t["ref"], strict=True)])}
    if a.grid_rows and threads == int(a.threads.split(",")[0]):  # the first thread count only
        out["grid_states"] = grid_ab(a.grid_rows, img, lp, labels, has, old, a.grid_rounds)
    return out


def grid_ab(n: int, img: np.ndarray, lp: np.ndarray, labels: np.ndarray, has: np.ndarray,
            old: dict[str, Any], rounds: int) -> dict[str, Any]:
    """``grid_states`` over fit_fusion's default 61-point grid on the first n rows."""
    from geocsp.evaluation.calibration import DEFAULT_FIT_BETAS, DEFAULT_FIT_EPSILONS, fusion_grid
    from geocsp.evaluation.tuning import grid_states

    pts = fusion_grid(DEFAULT_FIT_BETAS, DEFAULT_FIT_EPSILONS)
    args = (img[:n], lp[:n], labels[:n], has[:n], pts)
    fns = {"before": lambda: old["tuning"].grid_states(*args, ks=(1, 3, 5, 10), n_bins=15),
           "after": lambda: grid_states(*args, ks=(1, 3, 5, 10), n_bins=15)}
    sb, sa = fns["before"](), fns["after"]()
    t: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            t0 = time.perf_counter()
            fns[name]()
            t[name].append(time.perf_counter() - t0)
        print(f"  grid_states {n} rows round {r}: before {t['before'][-1]:.2f}s after {t['after'][-1]:.2f}s", flush=True)
    return {"rows": n, "points": len(pts), "states_identical": bool(torch.equal(torch.nan_to_num(sb, nan=-7.0),
                                                                               torch.nan_to_num(sa, nan=-7.0))),
            "before_s": med(t["before"]), "after_s": med(t["after"]),
            "speedup": med([b / f for b, f in zip(t["before"], t["after"], strict=True)])}


def rng(d: dict[str, float], fmt: str = ".2f") -> str:
    return f"{d['median']:{fmt}} ({d['min']:{fmt}}–{d['max']:{fmt}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=steps.INAT["val_rows"])
    ap.add_argument("--before-rev", default="4804c23")
    ap.add_argument("--grid-rows", type=int, default=0, help="also A/B grid_states on this many rows (0: skip)")
    ap.add_argument("--grid-rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "eval-roofline.json")
    a = ap.parse_args()
    env = {**measure.environment(torch.device("cpu")), "argv": sys.argv[1:], "before_rev": a.before_rev,
           "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = old_modules(a.before_rev, Path(tmp))
        for th in (int(x) for x in a.threads.split(",")):
            rows.append(run_threads(th, a, old))
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    print(f"\nevaluation roofline — {env['device_name']}, torch {env['torch']}, {a.rows:,} x {Q:,}, "
          f"{a.rounds} interleaved rounds, before = {a.before_rev}; median (min–max)")
    head = f"{'threads':>7} {'variant':<7} {'P(y|x) s':>18} {'metrics s':>20} {'total s':>20} {'roofline':>18}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        for v in ("before", "after"):
            print(f"{r['threads']:>7} {v:<7} {rng(r['prior_s']):>18} {rng(r[v]['metrics_s'], '.3f'):>20} "
                  f"{rng(r[v]['total_s']):>20} {rng(r[v]['roofline']):>18}")
        print(f"{'':>7} metrics speedup {rng(r['metrics_speedup'])}x; identical metrics: {r['metrics_identical']}; "
              f"ref {r['ref_gflop_per_s']['median']:.1f} GFLOP/s; load {' '.join(r['loadavg_1min_per_round'])}")
        st = r["streamed"]
        print(f"{r['threads']:>7} {'streamed':<8} P(y|x) inside the metric pass {rng(st['total_s']):>37} "
              f"{rng(st['roofline']):>18}  (identical to after: {st['identical']})")
        if "grid_states" in r:
            g = r["grid_states"]
            print(f"{'':>7} grid_states {g['rows']} rows x {g['points']} points: before {rng(g['before_s'])} s, "
                  f"after {rng(g['after_s'])} s, speedup {rng(g['speedup'])}x, identical: {g['states_identical']}")
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
