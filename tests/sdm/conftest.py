"""A synthetic presence/background problem that is learnable by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocsp.sdm import InputSpec, Points, points_from_table

CENTRES = {"disc": (10.0, 10.0, 4.0), "corner": (4.0, 4.0, 3.0)}
BOX = (0.0, 0.0, 20.0, 20.0)


def in_disc(rng: np.random.Generator, n: int, cx: float, cy: float, r: float) -> np.ndarray:
    ang = rng.uniform(0, 2 * np.pi, n)
    rad = r * np.sqrt(rng.uniform(0, 1, n))
    return np.c_[cx + rad * np.cos(ang), cy + rad * np.sin(ang)]


def covariate(ll: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """'warmth': high near the 'disc' centre (plus noise)."""
    d = np.hypot(ll[:, 0] - 10.0, ll[:, 1] - 10.0)
    return -d + rng.normal(0, 0.3, len(ll))


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """Tiny networks: one thread is fastest on a shared 2-core machine."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synth_tables(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """records.csv (species, lon, lat, warmth, date), bg.csv (lon, lat, warmth)."""
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("synth")
    parts = []
    for name, (cx, cy, r) in CENTRES.items():
        ll = in_disc(rng, 150, cx, cy, r)
        parts.append(pd.DataFrame({"species": name, "lon": ll[:, 0], "lat": ll[:, 1]}))
    rec = pd.concat(parts, ignore_index=True)
    rec["warmth"] = covariate(rec[["lon", "lat"]].to_numpy(), rng)
    rec["date"] = [f"2020-{m:02d}-15" for m in rng.integers(1, 13, len(rec))]
    rec.loc[::7, "date"] = ""
    bll = rng.uniform(0, 20, (800, 2))
    bg = pd.DataFrame({"lon": bll[:, 0], "lat": bll[:, 1], "warmth": covariate(bll, rng)})
    rec.to_csv(d / "records.csv", index=False)
    bg.to_csv(d / "bg.csv", index=False)
    return {"dir": d, "records": d / "records.csv", "bg": d / "bg.csv", "rec": rec, "bgdf": bg}


SMALL = {"encoder": "sphereC+", "encoder_args": {"num_scales": 8, "r_min_deg": 1.0, "r_max_deg": 60.0}, "network": "fcnet",
         "network_args": {"num_res_blocks": 1, "dropout": 0.0}, "dim": 32}


def synth_points(synth_tables: dict, date: bool = False) -> tuple[Points, Points]:
    """(presences with a 'warmth' covariate [and dates], background) of the synthetic tables."""
    spec = InputSpec(covariate_cols=("warmth",), date_col="date" if date else None)
    pres = points_from_table(synth_tables["rec"], spec, "rec", "species")
    bg = points_from_table(synth_tables["bgdf"], InputSpec(covariate_cols=("warmth",)), "bg")
    return pres, bg
