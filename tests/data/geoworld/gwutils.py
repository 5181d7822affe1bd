"""Shared helpers of the GeoWorld tests: a tiny config and a world's arrays."""

from __future__ import annotations

import numpy as np

from geocsp.data.geoworld import GeoWorld, GeoWorldConfig

TINY = GeoWorldConfig(num_classes=12, num_genera=4, feature_dim=8, train_rows=240, unlabeled_rows=100,
                      val_per_class=4, max_train_per_class=100, land_mc_samples=200)


def world_arrays(world: GeoWorld) -> dict[str, np.ndarray]:
    """Every array of an in-memory world, keyed ``truth.<name>`` / ``<split>.<what>``."""
    out = {f"truth.{k}": v for k, v in world.truth.to_npz().items()}
    for name, sd in world.splits.items():
        out[f"{name}.lonlat"] = sd.table[["lon", "lat"]].to_numpy()
        out[f"{name}.features"] = np.asarray(sd.features)
        out.update({f"{name}.probs.{k}": p.toarray() if hasattr(p, "toarray") else np.asarray(p)
                    for k, p in sd.probs.items()})
    return out
