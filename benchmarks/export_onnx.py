"""Points/s of a prior in geocsp (torch, eval) vs its ONNX export under ONNX Runtime (not a test).

Exports the prior of ``--run`` (default: a randomly initialised prior with the default
LocationEncoderConfig and ``--classes`` classes; timing does not depend on the weights) with
``geocsp.training.export.export_onnx``, then times P(y|x) on the same batch of random points
in both, interleaved round by round (median of ``--repeats``). Prints a Markdown table and
writes benchmarks/results/export_onnx.json.

    python benchmarks/export_onnx.py                   # batch 4096, 5 repeats, 1 thread
    python benchmarks/export_onnx.py --run runs/csp --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from perf.measure import interleaved

from geocsp.checkpoints import load_prior
from geocsp.io import atomic_write_json
from geocsp.nets import LocationEncoder, LocationEncoderConfig
from geocsp.prior import GeoPrior
from geocsp.training.export import export_onnx, random_lonlat

RESULTS = Path(__file__).resolve().parent / "results" / "export_onnx.json"


def _random_prior(directory: Path, classes: int) -> Path:
    """Save a randomly initialised prior (default encoder config) to ``directory``."""
    torch.manual_seed(0)
    enc = LocationEncoder(LocationEncoderConfig())
    GeoPrior(enc, 0.1 * torch.randn(classes, enc.dim)).save_pretrained(directory)
    return directory


def bench(run: Path, tmp: Path, batch: int, repeats: int, threads: int) -> dict[str, Any]:
    """Export ``run``'s prior into ``tmp`` and time torch vs ONNX Runtime on one batch."""
    meta = export_onnx(run, tmp / "prior.onnx")
    prior = load_prior(run)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(tmp / "prior.onnx"), options, providers=["CPUExecutionProvider"])
    pts = random_lonlat(batch, seed=1)
    x = torch.from_numpy(pts)

    def geocsp_torch() -> object:
        with torch.no_grad():
            return prior.probs(x)

    def onnxruntime() -> object:
        return sess.run(["probs"], {"lonlat": pts})

    times = interleaved({"geocsp (torch)": geocsp_torch, "ONNX Runtime": onnxruntime},
                        torch.device("cpu"), warmup=1, repeats=repeats)
    rows = [{"runtime": name, "median_s": statistics.median(t), "points_per_s": batch / statistics.median(t),
             "times_s": t} for name, t in times.items()]
    return {"rows": rows, "export": {k: meta[k] for k in ("kind", "exporter", "opset", "parity", "output")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="fine-tune run or prior dir (default: random prior)")
    parser.add_argument("--classes", type=int, default=1000, help="Q of the default random prior")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch and ONNX Runtime")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        run = args.run or _random_prior(Path(d) / "prior", args.classes)
        res = bench(run, Path(d), args.batch, args.repeats, args.threads)
    speed = {r["runtime"]: r["points_per_s"] for r in res["rows"]}
    print("| runtime | points/s | median ms / batch |")
    print("|---|---:|---:|")
    for r in res["rows"]:
        print(f"| {r['runtime']} | {r['points_per_s']:,.0f} | {1e3 * r['median_s']:.2f} |")
    print(f"\nONNX Runtime / torch: {speed['ONNX Runtime'] / speed['geocsp (torch)']:.2f}x; "
          f"exporter {res['export']['exporter']}, max |ORT - geocsp| {res['export']['parity']['max_abs_diff']:.2g}")
    meta = {"date": dt.date.today().isoformat(), "run": str(args.run or f"random prior, Q={args.classes}"),
            "batch": args.batch, "repeats": args.repeats, "threads": args.threads, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "torch": torch.__version__, "onnxruntime": ort.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"meta": meta, **res})


if __name__ == "__main__":
    main()
