"""Spatial-block CV AUC of geocsp SDMs vs its baselines on the shared dev data (issue 9).

Usage: python benchmarks/sdm_results.py [--data ../shared/data] [--out benchmarks/sdm_results.json]
       [--folds 5] [--quick]

Prints a markdown table and writes JSON. Each dataset's presences + background are cut into
the same K spatial-block folds for every method; AUC/AP are pooled out-of-fold per species,
then averaged over species (geocsp.sdm.cv).
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

from geocsp.sdm import FitOptions, InputSpec, SDMConfig, fit_sdm, points_from_table, read_records
from geocsp.sdm.cv import evaluate_pa, kde_scorer, logistic_scorer, pa_sites, spatial_block_cv
from geocsp.sdm.records import drop_rare_species, raster_region, sample_background
from geocsp.sdm.region import Region

GLC_PLACEHOLDER = (
    "geocsp sdm fit glc23_sample/Presences_only_train_sample.csv --species-col speciesId "
    "--min-records 1 --region=-10,35,30,70 --background-sample 2000 "
    "--inputs position --init LITE0_PRETRAINED_ENCODER_DIR --cv-folds 5 --block-deg 2 "
    "--pa glc23_sample/Presences_Absences_train_sample.csv --out runs/glc23-init"
)


def model_scorer(inputs: str, names: list[str], opts: FitOptions, use_time: bool):
    cfg = SDMConfig(inputs=inputs, num_covariates=len(names), use_time=use_time)

    def score(tp, tb, test, species):
        m = fit_sdm(tp, tb, cfg, opts, covariate_names=names, species=species)
        return m.predict(test.lonlat, test.covariates, test.doy)

    return score


def run(name, pres, bg, names, args, block_deg, use_time=False):
    opts = FitOptions(epochs=args.epochs, min_steps=args.min_steps, seed=0)
    scorers = {"SDM position": model_scorer("position", names, opts, use_time)}
    if names:
        scorers["SDM covariates"] = model_scorer("covariates", names, opts, use_time)
        scorers["SDM both"] = model_scorer("both", names, opts, use_time)
        scorers["baseline logistic (covariates)"] = logistic_scorer
    scorers["baseline KDE (coordinates)"] = kde_scorer
    t = time.time()
    res = spatial_block_cv(pres, bg, scorers, args.folds, block_deg, seed=0)
    print(f"# {name}: {len(pres)} presences, {len(bg)} background, {time.time() - t:.0f} s")
    return {k: {kk: vv for kk, vv in v.items() if kk != "per_species"} if k != "folds" else v
            for k, v in res.items()}


def bradypus(data: Path, args):
    d = data / "dismo_bradypus_bioclim"
    rasters = tuple(sorted(glob.glob(str(d / "bio*.grd"))))
    spec = InputSpec(rasters=rasters)
    pres = points_from_table(read_records(d / "bradypus.csv"), spec, "bradypus.csv", "species")
    bg = sample_background(args.bg, raster_region(rasters), rasters, "land", seed=0)
    return run("Bradypus + bioclim", pres, bg, spec.covariate_names, args, block_deg=5.0)


def slug(data: Path, args):
    df = read_records(data / "elapid_ariolimax_sample" / "ariolimax_buttoni_sample.csv")
    cols = ("SurfaceTempMean", "SurfaceTempStdv", "LAIMean", "LAIStdv", "CloudCoverMean", "CloudCoverStdv")
    spec = InputSpec(covariate_cols=cols)
    df["species"] = "Ariolimax buttoni"
    pres = points_from_table(df[df.presence == 1].reset_index(drop=True), spec, "ariolimax", "species")
    bg = points_from_table(df[df.presence == 0].reset_index(drop=True), spec, "ariolimax bg")
    return run("banana slug (6 covariates)", pres, bg, list(cols), args, block_deg=0.5)


def glc23(data: Path, args):
    d = data / "geolifeclef" / "glc23_sample"
    spec = InputSpec(date_col="dayOfYear")
    po = read_records(d / "Presences_only_train_sample.csv")
    pres = points_from_table(po, spec, "PO", "speciesId")
    pres = drop_rare_species(pres, 1, "PO")
    region = Region((-10.0, 35.0, 30.0, 70.0), name="Europe box")
    bg = sample_background(args.bg, region, (), "land", seed=0)
    out = run("GLC23 PO sample (position + day of year)", pres, bg, [], args, block_deg=2.0, use_time=True)
    # presence/absence evaluation: fit on all PO records, score the PA sites
    cfg = SDMConfig(inputs="position", use_time=True)
    m = fit_sdm(pres, bg, cfg, FitOptions(epochs=args.epochs, min_steps=args.min_steps))
    pa = read_records(d / "Presences_Absences_train_sample.csv")
    sites, y = pa_sites(pa, "speciesId", m.species)
    ll = sites[["lon", "lat"]].to_numpy(float)
    ev = evaluate_pa(y, m.predict(ll, np.zeros((len(ll), 0)), sites["dayOfYear"].to_numpy(float)), m.species)
    overlap = sorted(set(m.species) & set(pa["speciesId"].astype(str)))
    out["pa"] = {k: v for k, v in ev.items() if k != "per_species"} | {"species_in_both": overlap}
    return out


def table(results: dict) -> str:
    lines = ["| dataset | method | CSP init | mean AUC | mean AP | species scored |", "|---|---|---|---|---|---|"]
    for ds, res in results.items():
        for meth, r in res.items():
            if meth in ("folds", "pa"):
                continue
            init = "no" if meth.startswith("SDM") else "-"
            lines.append(f"| {ds} | {meth} | {init} | {r['mean_auc']:.3f} | {r['mean_ap']:.3f} | {r['n_species_scored']}/{r['n_species']} |")
        if "pa" in res:
            p = res["pa"]
            lines.append(f"| {ds} | SDM position, PA sites | no | {p['mean_auc']:.3f} | {p['mean_ap']:.3f} | {p['n_species_scored']}/{p['n_species']} |")
    lines.append("| GLC23 | SDM position | yes (Sentinel-2 Lite0) | *placeholder: encoder not yet available* | | |")
    return "\n".join(lines)


def main() -> None:
    import torch

    torch.set_num_threads(1)  # the dev machine has 2 shared cores; tiny nets run fastest single-threaded
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--out", default="benchmarks/sdm_results.json")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--min-steps", type=int, default=300)
    ap.add_argument("--bg", type=int, default=2000)
    args = ap.parse_args()
    data = Path(args.data)
    t0 = time.time()
    results = {"Bradypus": bradypus(data, args), "banana slug": slug(data, args), "GLC23": glc23(data, args)}
    print(table(results))
    meta = {"date": str(date.today()), "machine": f"{platform.machine()} {platform.processor() or ''} (2-core CPU shared)",
            "command": "python benchmarks/sdm_results.py", "args": vars(args), "seconds": round(time.time() - t0),
            "glc23_init_command": GLC_PLACEHOLDER}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
