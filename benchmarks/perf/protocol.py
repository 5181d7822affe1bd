"""Item 4 of issue 6: the whole paper-inat2018 protocol through the real data path.

Run as a child process by ``benchmarks/run.py`` so that its peak RSS (``VmHWM``) is the
protocol's own: load the dataset (features memory-mapped), pre-train CSP-MC-BLD, fine-tune
on the 5 % subset (which ends with the val evaluation), print one JSON line.

    python benchmarks/perf/protocol.py --data DIR --out RUN [--pre-epochs 30] [--ft-epochs 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf.measure import PeakSampler, cuda_peak_bytes, peak_rss_bytes, rss_bytes


def _epoch_seconds(run: Path) -> list[float]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [float(json.loads(x)["seconds"]) for x in lines if x.strip()]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pre-epochs", type=int, default=30)
    ap.add_argument("--ft-epochs", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ratio", type=float, default=0.05)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from geocsp.data import load_dataset
    from geocsp.training import FinetuneConfig, PretrainConfig, finetune, pretrain, resolve_config

    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    sets = [f"device={a.device}", f"precision={a.precision}", "quiet=true", "keep_checkpoints=1"]
    pre = resolve_config(PretrainConfig, stage="pretrain", preset="paper-inat2018",
                         overrides=[*sets, f"data.epochs={a.pre_epochs}"])
    ft = resolve_config(FinetuneConfig, stage="finetune", preset="paper-inat2018",
                        overrides=[*sets, f"data.epochs={a.ft_epochs}", f"ratio={a.ratio}"])
    t = {"start": time.perf_counter()}
    with PeakSampler() as peaks:
        ds = load_dataset(a.data)
        t["loaded"] = time.perf_counter()
        rss_loaded = rss_bytes()
        pretrain(pre, ds, out / "pre")
        t["pretrained"] = time.perf_counter()
        metrics = finetune(ft, ds, out / "ft", init=out / "pre")
        t["finetuned"] = time.perf_counter()
    pre_ep, ft_ep = _epoch_seconds(out / "pre"), _epoch_seconds(out / "ft")
    feats = ds.split("train").features
    result = {
        "pre_epochs": a.pre_epochs, "ft_epochs": a.ft_epochs,
        "load_s": t["loaded"] - t["start"],
        "pretrain_s": t["pretrained"] - t["loaded"], "pretrain_epoch_s": pre_ep,
        "finetune_s": t["finetuned"] - t["pretrained"], "finetune_epoch_s": ft_ep,
        "wall_s": t["finetuned"] - t["start"],
        "peak_rss_bytes": peak_rss_bytes(), "rss_after_load_bytes": rss_loaded,
        "peak_anon_bytes": peaks.peak["anon"], "peak_file_bytes": peaks.peak["file"],
        "cuda_peak_bytes": cuda_peak_bytes(torch.device(a.device)),
        "feature_bytes": int(feats.nbytes) if feats is not None else 0,
        "fused_top1": metrics.get("fused", {}).get("top1"),
        "image_top1": metrics.get("image", {}).get("top1"),
    }
    print("RESULT " + json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
