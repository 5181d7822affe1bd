"""Geotagged photos -> image features -> a location prior -> top-k classes at new places.

    python examples/photos_to_prior.py --out /tmp/photos-example
    python examples/photos_to_prior.py --photos my_photos/ --backbone efficientnet-lite0 --out run

``--photos`` is a folder of JPEGs with GPS in their EXIF, one sub-folder per class (the
sub-folder name is the label). Without it, a small synthetic folder is generated: four
"species", each photographed in its own part of Europe with its own colouring. Features
come from ``--backbone`` (any of ``geocsp features extract``; default: a tiny colour-layout
network exported here with ``torch.export``, so nothing is downloaded). Then CSP
pre-training on (image, location) pairs, fine-tuning of the prior on the labels, and the
prior's top-2 classes at a few new places (read from a GeoJSON file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _geocsp import geocsp
from PIL import Image, TiffImagePlugin

SPECIES = {  # name: (lon, lat) of its range centre, RGB colouring
    "alpine_swift": ((10.5, 46.5), (200, 60, 40)),
    "iberian_lynx": ((-4.0, 39.0), (60, 170, 60)),
    "baltic_seal": ((21.0, 58.5), (50, 80, 210)),
    "hungarian_vole": ((19.5, 47.2), (220, 200, 50)),
}
TINY = ["--set", "model.dim=32", "--set", "model.network_args.hidden_dim=64",
        "--set", "model.encoder_args.num_scales=8", "--device", "cpu", "--quiet"]


def _dms(v: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    """Degrees as EXIF (degrees, minutes, seconds) rationals."""
    v = abs(v)
    d, m = int(v), int((v - int(v)) * 60)
    s = round((v - d - m / 60) * 360000)
    return tuple(TiffImagePlugin.IFDRational(n, q) for n, q in ((d, 1), (m, 1), (s, 100)))


def make_photos(folder: Path, per_class: int, seed: int) -> None:
    """``folder/<species>/<i>.jpg``: 32x32 JPEGs with GPS EXIF near each species' range centre."""
    rng = np.random.default_rng(seed)
    for name, ((lon0, lat0), rgb) in SPECIES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            lon, lat = lon0 + rng.normal(0, 1.5), lat0 + rng.normal(0, 1.0)
            pixels = np.clip(np.array(rgb) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            exif = Image.Exif()
            exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: _dms(lat), 3: "E" if lon >= 0 else "W", 4: _dms(lon)}
            Image.fromarray(pixels).save(folder / name / f"{i:03d}.jpg", exif=exif)


def colour_backbone(path: Path) -> Path:
    """A feature extractor with no learned weights: mean colour on a 4x4 grid (48 dims), as ``.pt2``."""
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (torch.zeros(2, 3, 32, 32),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    path.with_suffix(".json").write_text(json.dumps({"preprocess": {"size": 32, "crop_pct": 1.0}}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working directory (created)")
    parser.add_argument("--photos", type=Path, default=None, help="your photo folder (default: generated)")
    parser.add_argument("--backbone", default=None, help="e.g. efficientnet-lite0 (default: the colour network)")
    parser.add_argument("--weights", type=Path, default=None, help="local weights for --backbone")
    parser.add_argument("--per-class", type=int, default=16, help="generated photos per species")
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=150)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    photos = args.photos
    if photos is None:
        photos = out / "photos"
        make_photos(photos, args.per_class, seed=0)
    backbone, weights = args.backbone, args.weights
    if backbone is None:
        backbone, weights = "torch-export", colour_backbone(out / "colour.pt2")

    # 1. photos -> features: a geocsp dataset (labels = sub-folders, locations = EXIF GPS)
    extract = ["features", "extract", photos, "--backbone", backbone, "--out", out / "features", "--quiet",
               "--device", "cpu"]
    geocsp(*extract, *(["--weights", weights] if weights is not None else []))
    geocsp("data", "split", out / "features", "--out", out / "data", "--val-frac", 0.25, "--seed", 0)

    # 2. features + locations -> CSP pre-training -> fine-tuned prior P(y | location)
    geocsp("pretrain", "--data", out / "data", "--out", out / "pre", "--epochs", args.pretrain_epochs, *TINY)
    geocsp("finetune", "--data", out / "data", "--out", out / "prior", "--init", out / "pre", "--ratio", 1.0,
           "--epochs", args.finetune_epochs, *TINY)

    # 3. the prior at new places (any table format; here GeoJSON points)
    places = {"Alps": (9.5, 46.8), "Andalusia": (-4.5, 37.5), "Gulf of Riga": (23.5, 57.5), "Pannonia": (19.0, 47.5)}
    features = [{"type": "Feature", "properties": {"place": name},
                 "geometry": {"type": "Point", "coordinates": list(lonlat)}} for name, lonlat in places.items()]
    (out / "places.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    geocsp("predict", out / "prior", out / "places.geojson", "--out", out / "places_top2.csv", "--top-k", 2,
           "--device", "cpu", "--overwrite")
    print(pd.read_csv(out / "places_top2.csv")[["place", "class_1", "score_1", "class_2", "score_2"]].to_string(index=False))


if __name__ == "__main__":
    main()
