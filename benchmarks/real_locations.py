"""The paper's protocol on real locations: DISDAT presence-only records through the documented path.

GeoWorld's ranges are smooth blobs on a globe; real species records are clustered in small
regions. This builds a classification dataset from the 7,129 presence-only records of the
DISDAT AWT and NSW regions (``../shared/data/disdat_dev``: 94 species, real lon/lat; split per
species into train 70 % / calib 10 % / val 20 %), with **simulated** image features (a class
embedding plus noise, 64-d) and **simulated** image classifiers for λ = 0.1 and 1:

* ``--classifier prior`` (default): logits = s_λ · [y] + Gumbel noise + log p_train(y), i.e. a
  classifier trained on the same imbalanced train split, which knows the class prior;
* ``--classifier balanced``: the same without log p_train(y) (a class-balanced classifier).

It then runs exactly what a user runs — ``geocsp data import-table``, ``geocsp data
add-probs``, ``geocsp bench paper --data DIR`` (preset ``auto``) — and copies the results.
Needs the shared data (exits with a message without it). Not a test.

    python benchmarks/real_locations.py OUT [--classifier prior|balanced] [--seeds 3] [--jobs 2] [--methods M]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DISDAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "disdat_dev"
STRENGTH = {"ratio0.100": 3.0, "default": 4.5}
"""Logit added to the true class: image-only top-1 ≈ 31 % / 60 % with the class prior."""


def _geocsp(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "geocsp", *args], check=True)


def build(out: Path, classifier: str) -> Path:
    """Write the CSV, features and probabilities, then import them with the CLI; returns the dataset."""
    rng = np.random.default_rng(0)
    parts = [pd.read_csv(DISDAT / f"{r}train_po.csv.gz")[["spid", "lon", "lat"]] for r in ("AWT", "NSW")]
    df = pd.concat(parts, ignore_index=True).rename(columns={"spid": "label"})
    df = df.sample(frac=1, random_state=0).reset_index(drop=True)
    split = np.empty(len(df), object)
    for idx in df.groupby("label").indices.values():
        k = len(idx)
        nv, nc = max(1, int(0.2 * k)), (max(1, int(0.1 * k)) if k >= 3 else 0)
        split[idx[:nv]], split[idx[nv:nv + nc]], split[idx[nv + nc:]] = "val", "calib", "train"
    df["split"] = split
    classes = sorted(df.label.unique())
    q, index = len(classes), {c: i for i, c in enumerate(classes)}
    y = df.label.map(index).to_numpy()
    prior = np.bincount(y[split == "train"], minlength=q) + 1.0
    prior /= prior.sum()
    emb = rng.normal(size=(q, 64))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "features.npy", (0.6 * emb[y] + rng.normal(size=(len(df), 64))).astype(np.float32))
    df.to_csv(out / "records.csv", index=False)
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    ds = out / "dataset"
    _geocsp("data", "import-table", str(out / "records.csv"), "--out", str(ds), "--split-col", "split",
            "--label-col", "label", "--features", str(out / "features.npy"), "--classes", str(out / "classes.txt"),
            "--overwrite")
    for name in ("val", "calib"):
        yy = y[split == name]
        for key, s in STRENGTH.items():
            logits = rng.gumbel(size=(len(yy), q))
            logits[np.arange(len(yy)), yy] += s
            if classifier == "prior":
                logits += np.log(prior)[None]
            p = np.exp(logits - logits.max(1, keepdims=True))
            np.save(out / f"{name}.{key}.npy", (p / p.sum(1, keepdims=True)).astype(np.float32))
            _geocsp("data", "add-probs", str(ds), str(out / f"{name}.{key}.npy"), "--split", name, "--key", key)
    return ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--classifier", choices=("prior", "balanced"), default="prior")
    ap.add_argument("--seeds", default="3")
    ap.add_argument("--jobs", default="2")
    ap.add_argument("--methods", default=None, help="bench paper --methods (default: its Table 1)")
    args = ap.parse_args()
    if not DISDAT.is_dir():
        sys.exit(f"real_locations: {DISDAT} not found (the shared DISDAT data); nothing to run")
    ds = build(args.out, args.classifier)
    _geocsp("bench", "paper", "--data", str(ds), "--out", str(args.out / "bench"), "--seeds", args.seeds,
            "--jobs", args.jobs, "--no-figures", *(["--methods", args.methods] if args.methods else []))


if __name__ == "__main__":
    main()
