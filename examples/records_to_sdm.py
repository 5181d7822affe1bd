"""Presence records -> a species distribution model -> GeoTIFF range maps + an HTML map.

    python examples/records_to_sdm.py --out /tmp/sdm-example
    python examples/records_to_sdm.py --records obs.csv --species-col species --region -10,35,30,62 --out run

``--records`` is any table of presence-only records (CSV, CSV.gz, Parquet, GeoParquet, or
GeoJSON points; add ``--lon-col/--lat-col`` to the ``sdm fit`` line for other column names).
Without it, two synthetic species are generated on land in Europe and written as GeoJSON.
The model is fitted on the positions alone with background points sampled on land in the
region; each species' range is written as a float32 GeoTIFF (EPSG:4326, ocean = nodata),
read back with rasterio and checked at each range centre, and the model as an interactive
map in one self-contained HTML file (``map.html``; open it in a browser, no internet needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _geocsp import geocsp

from geocsp.landmask import is_land

SPECIES = {"alpine_newt": (10.0, 47.0), "baltic_vole": (25.5, 58.7)}  # name: (lon, lat) range centre
REGION = "-10,35,30,62"


def make_records(path: Path, per_species: int, seed: int) -> Path:
    """GeoJSON presence records: points on land around each species' range centre."""
    rng = np.random.default_rng(seed)
    features = []
    for name, (lon0, lat0) in SPECIES.items():
        pts = np.stack([rng.normal(lon0, 2.5, 4 * per_species), rng.normal(lat0, 1.5, 4 * per_species)], axis=1)
        for lon, lat in pts[is_land(pts)][:per_species]:
            features.append({"type": "Feature", "properties": {"species": name},
                             "geometry": {"type": "Point", "coordinates": [round(lon, 4), round(lat, 4)]}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working directory (created)")
    parser.add_argument("--records", type=Path, default=None, help="your presence records (default: generated)")
    parser.add_argument("--species-col", default="species")
    parser.add_argument("--region", default=REGION, help="min_lon,min_lat,max_lon,max_lat")
    parser.add_argument("--per-species", type=int, default=60, help="generated records per species")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--res", type=float, default=0.5, help="map cell size in degrees")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    records = args.records or make_records(out / "records.geojson", args.per_species, seed=0)

    # 1. records -> one multi-species SDM (positions only; background sampled on land in the region)
    geocsp("sdm", "fit", records, "--species-col", args.species_col, "--background-sample", 1000,
           "--region", args.region, "--epochs", args.epochs, "--seed", 0, "--device", "cpu", "--out", out / "sdm")
    species = json.loads((out / "sdm" / "model" / "config.json").read_text())["species"]

    # 2. the model -> one GeoTIFF per species (EPSG:4326, ocean = nodata, provenance in the tags)
    for name in species:
        geocsp("map", out / "sdm", "--species", name, "--region", args.region, "--res", args.res,
               "--out", out / f"{name}.tif", "--overwrite")
    # ... and the interactive map (search a species, opacity/threshold sliders, click for scores),
    # one self-contained HTML file that works offline
    geocsp("map", out / "sdm", "--species", species[0], "--region", args.region, "--html", out / "map.html",
           "--overwrite")

    # 3. read a GeoTIFF back (any GIS reads it too) and look at the range centres
    if args.records is None:
        check_ranges(out)


def check_ranges(out: Path) -> None:
    """Print each map's suitability at every species' range centre (own centre first)."""
    try:
        import rasterio
    except ImportError:
        print("rasterio is not installed: skipping the read-back (pip install 'geocsp[raster]')")
        return
    for name in SPECIES:
        with rasterio.open(out / f"{name}.tif") as src:
            values = {other: float(next(src.sample([lonlat]))[0]) for other, lonlat in SPECIES.items()}
            print(f"{name}.tif ({src.crs}, {src.width}x{src.height}): "
                  + ", ".join(f"{k} centre {v:.3f}" for k, v in values.items()))


if __name__ == "__main__":
    main()
