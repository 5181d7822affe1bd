"""Tests of geocsp.data.geoworld.features: the genus structure of the image features."""

from __future__ import annotations

import numpy as np


def test_genus_structure(small) -> None:
    path, ds = small
    tr = ds.split("train")
    genus = np.load(path / "truth.npz")["genus"]
    means = np.stack([tr.features[tr.labels == c].mean(0) for c in range(len(ds.classes))])
    d = np.linalg.norm(means[:, None] - means[None], axis=2)
    same = (genus[:, None] == genus[None]) & ~np.eye(len(genus), dtype=bool)
    diff = genus[:, None] != genus[None]
    assert d[same].mean() < 0.5 * d[diff].mean()
