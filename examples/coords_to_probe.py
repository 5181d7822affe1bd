"""Coordinates -> location embeddings -> a linear probe (land or ocean?).

    python examples/coords_to_probe.py --out /tmp/probe-example
    python examples/coords_to_probe.py --encoder sphereC+ --out /tmp/probe-example

Points are drawn uniformly on the sphere and labelled land/ocean with geocsp's bundled land
mask (``geocsp.landmask``). ``geocsp embed`` turns the points table into embeddings: GeoCLIP's
released location encoder when it is installed (``pip install --no-deps geoclip``; read
offline), else — or with ``--encoder NAME`` — a raw multi-scale position encoding with no
training (``geocsp encoders`` lists them). A logistic-regression probe is fitted on 2/3 of
the points and scored on the rest, against the majority class and a probe on raw (lon, lat):
how much of the land/ocean layout is linearly readable from each representation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _geocsp import geocsp

import geocsp as gc
from geocsp.errors import GeocspError
from geocsp.landmask import is_land


def sphere_points(n: int, seed: int) -> np.ndarray:
    """(n, 2) (lon, lat) degrees uniform on the sphere."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180.0, 180.0, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return np.stack([lon, lat], axis=1)


def geoclip_installed() -> bool:
    """Whether GeoCLIP's released encoder can be read offline (package installed or cached)."""
    try:
        gc.embed("pretrained:geoclip", np.zeros((1, 2)))
    except GeocspError:
        return False
    return True


def raw_embeddings(name: str, lonlat: np.ndarray) -> np.ndarray:
    """(N, d) features of the untrained position encoder ``name``."""
    with torch.no_grad():
        return gc.create_encoder(name)(torch.as_tensor(lonlat, dtype=torch.float32)).numpy()


def probe_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, l2: float = 1e-3) -> float:
    """Test accuracy of an L2-regularised logistic regression fitted (L-BFGS) on the ``train`` rows."""
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")
    tr = torch.as_tensor(train)

    def loss() -> torch.Tensor:
        opt.zero_grad()
        logits = xt[tr] @ w[:-1] + w[-1]
        value = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt[tr]) + l2 * w[:-1].square().sum()
        value.backward()
        return value

    opt.step(loss)
    with torch.no_grad():
        pred = (xt[~tr] @ w[:-1] + w[-1]) > 0
    return float((pred.numpy() == y[~train].astype(bool)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working directory (created)")
    parser.add_argument("--encoder", default="auto", help="auto (GeoCLIP if installed, else sphereC+), geoclip, "
                                                          "or a position encoder name")
    parser.add_argument("--points", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    # 1. coordinates (any table format works; here Parquet) with a land/ocean target
    lonlat = sphere_points(args.points, args.seed)
    land = is_land(lonlat)
    pd.DataFrame({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "land": land}).to_parquet(out / "points.parquet")

    # 2. coordinates -> embeddings
    encoder = args.encoder
    if encoder == "auto":
        encoder = "geoclip" if geoclip_installed() else "sphereC+"
    if encoder == "geoclip":
        geocsp("embed", "--encoder", "geoclip", out / "points.parquet", "--out", out / "embeddings.npy",
               "--device", "cpu", "--overwrite")
        emb = np.load(out / "embeddings.npy")
    else:
        print(f"raw position encoding {encoder!r} (no training)")
        emb = raw_embeddings(encoder, lonlat)

    # 3. a linear probe: train on 2/3, test on 1/3
    train = np.random.default_rng(args.seed + 1).random(len(lonlat)) < 2 / 3
    results = {
        "encoder": encoder,
        "embedding_dim": int(emb.shape[1]),
        "n_train": int(train.sum()),
        "n_test": int((~train).sum()),
        "land_fraction": float(land.mean()),
        "majority_accuracy": float(max(land[~train].mean(), 1 - land[~train].mean())),
        "lonlat_probe_accuracy": probe_accuracy(lonlat, land, train),
        "embedding_probe_accuracy": probe_accuracy(emb, land, train),
    }
    (out / "probe.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
