"""disdat dev regions (AWT, NSW): presence-only SDMs scored by the literature's protocol (issue 16).

Usage: python benchmarks/disdat.py [--data ../shared/data/disdat_dev] [--out benchmarks/results/disdat.json]
       [--seeds 0,1,2] [--regions AWT,NSW] [--quick]

Protocol (Valavi et al. 2022; the data README): fit on presence-only records + the 10,000
background points; test on the presence/absence survey sites, each species only on the
sites of its own survey group (``geocsp.sdm.groups``); AUC-ROC per species, plain mean over
species. Every model is geocsp's own (``geocsp.sdm``): KDE of each species' presences on
coordinates (Scott's rule, and the leave-one-out CV bandwidth), logistic regression on
covariates, the neural SDM with position / covariates / both towers, and the neural
position SDM shrunk toward the KDE (weight n/(n+k), k chosen by spatial-block CV on the
training data only). AWT coordinates are read as metres in EPSG:28355 (``--crs``); NSW's
``vegsys`` is one-hot (categorical). Neural rows: mean (sd) over seeds; the paired
comparison against the KDE is over species (bootstrap 95 % CI of the mean difference).
Prints a markdown table and writes JSON as it goes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from geocsp.sdm import FitOptions, InputSpec, SDMConfig, fit_sdm, points_from_table, read_records
from geocsp.sdm.baselines import LogisticBaseline
from geocsp.sdm.categorical import expand, fit_levels, onehot_names
from geocsp.sdm.evaluate import read_sites
from geocsp.sdm.fit import fit_kde
from geocsp.sdm.groups import evaluate_sites, site_table, species_groups
from geocsp.sdm.model import DEFAULT_POSITION
from geocsp.sdm.shrinkage import select_shrinkage

REGIONS = {
    "AWT": {"cov": "bc01 bc04 bc05 bc06 bc12 bc15 bc17 bc20 bc31 bc33 slope topo tri".split(), "cat": [],
            "xy": ("x", "y", "EPSG:28355")},
    "NSW": {"cov": "cti disturb mi rainann raindq rugged soildepth soilfert solrad tempann tempmin topo".split(),
            "cat": ["vegsys"], "xy": ("lon", "lat", None)},
}
FINE = {**DEFAULT_POSITION, "encoder_args": {"num_scales": 8, "r_min_deg": 0.02}}
"""The tuned position tower: finest scale 0.02° (~2 km) instead of the default 0.1°."""
BLOCK_DEG = 0.5
CV_FOLDS = 3


def load(data: Path, region: str) -> dict:
    r = REGIONS[region]
    lon, lat, crs = r["xy"]
    po = read_records(data / f"{region}train_po.csv.gz", lon_col=lon, lat_col=lat, crs=crs)
    bg = read_records(data / f"{region}train_bg.csv.gz", lon_col=lon, lat_col=lat, crs=crs)
    levels = fit_levels([po, bg], tuple(r["cat"]), region) if r["cat"] else {}
    cov = (*r["cov"], *onehot_names(levels))
    spec = InputSpec(lon, lat, cov, categorical=tuple((c, tuple(v)) for c, v in levels.items()))
    pres = points_from_table(po, spec, f"{region}train_po", "spid")
    bgp = points_from_table(bg, spec, f"{region}train_bg")
    groups = species_groups(po, "spid", "group", f"{region}train_po")
    grp = sorted({p.name.split("_")[-1].split(".")[0] for p in data.glob(f"{region}test_pa_*.csv.gz")})
    sites = read_sites([data / f"{region}test_pa_{g}.csv.gz" for g in grp],
                       [data / f"{region}test_env_{g}.csv.gz" for g in grp],
                       lon_col=lon, lat_col=lat, crs=crs, site_col="siteid")
    species = sorted(set(pres.species.tolist()))
    table = site_table(sites, species, region, species_col="spid", group_col="group", groups=groups,
                       lon_col=lon, lat_col=lat)
    s = expand(table.sites, levels, region)[0] if levels else table.sites
    return {"pres": pres, "bg": bgp, "species": species, "table": table, "groups": groups, "cov": list(cov),
            "site_ll": s[[lon, lat]].to_numpy(float), "site_cov": s[list(cov)].to_numpy(float),
            "n_groups": len(grp)}


def score(d: dict, scores: np.ndarray) -> dict:
    res = evaluate_sites(d["table"], scores, d["species"], d["groups"])
    return {"mean_auc": res["mean_auc"], "mean_ap": res["mean_ap"], "n_species_scored": res["n_species_scored"],
            "auc": {s: v["auc"] for s, v in res["per_species"].items()}}


def predict(d: dict, fitted) -> np.ndarray:
    return fitted.predict(d["site_ll"], d["site_cov"], np.full(len(d["site_ll"]), np.nan))


def neural(d: dict, inputs: str, position: dict, epochs: int, seed: int):
    cfg = SDMConfig(inputs=inputs, num_covariates=len(d["cov"]), position=position)
    opts = FitOptions(epochs=epochs, seed=seed, device="cpu")
    return fit_sdm(d["pres"], d["bg"], cfg, opts, covariate_names=d["cov"], species=d["species"])


def paired(a: dict, b: dict, rng: np.random.Generator) -> dict:
    """Mean per-species AUC difference a - b, bootstrap 95 % CI over species, wins."""
    keys = [k for k in a if np.isfinite(a[k]) and np.isfinite(b.get(k, np.nan))]
    diff = np.array([a[k] - b[k] for k in keys])
    boots = rng.choice(diff, (2000, len(diff))).mean(axis=1)
    return {"mean_diff": float(diff.mean()), "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()), "n": len(diff)}


def run_region(d: dict, seeds: list[int], epochs: int, quick: bool, log) -> dict:
    out: dict = {}
    t = time.time()
    kde_scott = fit_kde(d["pres"], d["bg"], "scott", species=d["species"])
    out["KDE (Scott's rule)"] = score(d, predict(d, kde_scott))
    kde_cv = fit_kde(d["pres"], d["bg"], "cv", species=d["species"])
    out["KDE (LOO-CV bandwidth)"] = score(d, predict(d, kde_cv))
    lr = LogisticBaseline().fit(d["pres"].covariates, d["pres"].species, d["bg"].covariates)
    p = lr.predict(d["site_cov"])
    out["logistic (covariates)"] = score(d, p[:, [lr.species.index(s) for s in d["species"]]])
    log(f"  baselines {time.time() - t:.0f} s")
    variants = {
        "SDM position (default: 30 ep, r_min 0.1°)": ("position", DEFAULT_POSITION, 30),
        f"SDM position ({epochs} ep, r_min 0.02°)": ("position", FINE, epochs),
        "SDM covariates (30 ep)": ("covariates", DEFAULT_POSITION, 30),
        "SDM both (30 ep)": ("both", DEFAULT_POSITION, 30),
    }
    if not quick:
        variants[f"SDM covariates ({epochs} ep)"] = ("covariates", DEFAULT_POSITION, epochs)
        variants[f"SDM both ({epochs} ep, r_min 0.02°)"] = ("both", FINE, epochs)
    shrink_name = f"SDM position shrunk to KDE (k by {CV_FOLDS}-fold {BLOCK_DEG}° block CV)"
    for name in [*variants, shrink_name]:
        out[name] = {"seeds": []}
    for seed in seeds:
        nets = {}
        for name, (inputs, pos, ep) in variants.items():
            t = time.time()
            nets[name] = neural(d, inputs, pos, ep, seed)
            out[name]["seeds"].append({"seed": seed, **score(d, predict(d, nets[name]))})
            log(f"  seed {seed} {name}: {out[name]['seeds'][-1]['mean_auc']:.4f} ({time.time() - t:.0f} s)")
        t = time.time()
        inputs, pos, ep = variants[f"SDM position ({epochs} ep, r_min 0.02°)"]

        def fit_net(tp, tb, species, pos=pos, ep=ep, seed=seed):
            cfg = SDMConfig(inputs="position", position=pos)
            return fit_sdm(tp, tb, cfg, FitOptions(epochs=ep, seed=seed, device="cpu"), species=species)

        choice = select_shrinkage(d["pres"], d["bg"], fit_net, "cv", CV_FOLDS, BLOCK_DEG, seed)
        shrunk = nets[f"SDM position ({epochs} ep, r_min 0.02°)"]
        shrunk.kde, shrunk.shrink_k = kde_cv.kde, float(choice["k"])
        out[shrink_name]["seeds"].append({"seed": seed, "k": choice["k"], "cv_mean_auc": choice["cv_mean_auc"],
                                          **score(d, predict(d, shrunk))})
        log(f"  seed {seed} shrink k={choice['k']}: {out[shrink_name]['seeds'][-1]['mean_auc']:.4f} "
            f"({time.time() - t:.0f} s)")
    rng = np.random.default_rng(0)
    for name in [*variants, shrink_name]:
        runs = out[name]["seeds"]
        aucs = np.array([r["mean_auc"] for r in runs])
        out[name].update({"mean_auc": float(aucs.mean()), "sd_auc": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
                          "mean_ap": float(np.mean([r["mean_ap"] for r in runs])),
                          "n_species_scored": runs[0]["n_species_scored"]})
        per = {s: float(np.mean([r["auc"][s] for r in runs])) for s in runs[0]["auc"]}
        out[name]["auc"] = per
        out[name]["vs KDE (LOO-CV bandwidth)"] = paired(per, out["KDE (LOO-CV bandwidth)"]["auc"], rng)
        out[name]["vs KDE (Scott's rule)"] = paired(per, out["KDE (Scott's rule)"]["auc"], rng)
    return out


def table(results: dict) -> str:
    lines = ["| region | method | mean AUC | sd (seeds) | mean AP | Δ vs KDE-CV [95 % CI] | wins/losses | species |",
             "|---|---|---|---|---|---|---|---|"]
    for region, res in results["regions"].items():
        for name, r in res["methods"].items():
            cmp = r.get("vs KDE (LOO-CV bandwidth)")
            delta = f"{cmp['mean_diff']:+.4f} [{cmp['ci95'][0]:+.4f}, {cmp['ci95'][1]:+.4f}]" if cmp else "-"
            wl = f"{cmp['wins']}/{cmp['losses']}" if cmp else "-"
            sd = f"{r['sd_auc']:.4f}" if "sd_auc" in r else "-"
            lines.append(f"| {region} | {name} | {r['mean_auc']:.4f} | {sd} | {r['mean_ap']:.4f} | {delta} | {wl} | "
                         f"{r['n_species_scored']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/disdat_dev"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results/disdat.json"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--regions", default="AWT,NSW")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="one seed, fewer variants (a smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"command": " ".join(["python benchmarks/disdat.py", *sys.argv[1:]]),
               "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread",
               "protocol": "fit on PO + background; each species scored on its own survey group's PA sites; "
                           "AUC per species, mean over species", "seeds": seeds, "regions": {}}
    for region in args.regions.split(","):
        t = time.time()
        d = load(Path(args.data), region)
        print(f"# {region}: {len(d['pres'])} presences, {len(d['bg'])} background, {len(d['species'])} species, "
              f"{len(d['site_ll'])} PA sites in {d['n_groups']} groups", flush=True)
        methods = run_region(d, seeds, args.epochs, args.quick, lambda m: print(m, flush=True))
        results["regions"][region] = {"n_presences": len(d["pres"]), "n_background": len(d["bg"]),
                                      "n_species": len(d["species"]), "n_sites": len(d["site_ll"]),
                                      "seconds": round(time.time() - t), "methods": methods}
        out.write_text(json.dumps(results, indent=1, default=float))
    print(table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
