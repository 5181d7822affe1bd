"""Feature-extraction throughput: images/s per backend at 224 px (CPU; CUDA when present).

    python benchmarks/features.py [--n 32] [--batch-size 16] [--threads 1] [--device cpu]

Backends: built-in EfficientNet-Lite0 (torch), the same network as TorchScript, torch.export
(.pt2) and ONNX (ONNX Runtime), each skipped when its package is missing. Also times the
Pillow+NumPy preprocessing alone. Prints a table; writes benchmarks/results/features.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "features.json"


def _time(fn, n_images: int, repeats: int = 3) -> float:
    fn()  # warm-up
    best = min(_once(fn) for _ in range(repeats))
    return n_images / best


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _backends(tmp: Path, device: str) -> dict:
    """name -> loader() for each backend that can run here (all from the Lite0 weights)."""
    import torch

    from geocsp.features.backends import load_backbone
    from geocsp.features.lite0 import load_lite0_model

    model, _ = load_lite0_model()
    x = torch.zeros(2, 3, 224, 224)
    out = {"efficientnet-lite0 (torch)": lambda: load_backbone("efficientnet-lite0", device=device)}
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, x), str(tmp / "lite0.ts"))
    out["torchscript"] = lambda: load_backbone("torchscript", tmp / "lite0.ts", device=device)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: batch},)), str(tmp / "lite0.pt2"))
    out["torch-export"] = lambda: load_backbone("torch-export", tmp / "lite0.pt2", device=device)
    try:
        from geocsp.features.export_onnx import export_onnx

        export_onnx("efficientnet-lite0", None, tmp / "lite0.onnx")
        out["onnx (onnxruntime)"] = lambda: load_backbone("onnx", tmp / "lite0.onnx", device=device)
    except Exception as e:  # onnx/onnxruntime missing
        print(f"skipping onnx: {e}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    import torch
    from PIL import Image

    from geocsp.features.lite0 import LITE0_PREPROCESS
    from geocsp.features.preprocess import PreprocessConfig, preprocess

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (480, 640, 3), np.uint8)) for _ in range(args.n)]
    cfg = PreprocessConfig(**LITE0_PREPROCESS)
    rows = [{"backend": "preprocess (Pillow+NumPy, 640x480 -> 224)", "images_per_s":
             _time(lambda: [preprocess(im, cfg) for im in imgs], args.n)}]
    batch = np.stack([preprocess(im, cfg) for im in imgs])
    with tempfile.TemporaryDirectory() as tmp:
        for name, load in _backends(Path(tmp), args.device).items():
            bb = load()

            def run(bb=bb) -> None:
                for i in range(0, args.n, args.batch_size):
                    bb.run(batch[i:i + args.batch_size])

            rows.append({"backend": name, "images_per_s": _time(run, args.n)})
    for r in rows:
        r["images_per_s"] = round(r["images_per_s"], 1)
    meta = {"device": args.device, "threads": args.threads, "batch_size": args.batch_size,
            "n_images": args.n, "size_px": 224, "model": "EfficientNet-Lite0",
            "torch": torch.__version__, "machine": platform.processor() or platform.machine()}
    print(f"{'backend':45s} images/s   ({meta['device']}, {args.threads} thread(s), batch {args.batch_size})")
    for r in rows:
        print(f"{r['backend']:45s} {r['images_per_s']:8.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
