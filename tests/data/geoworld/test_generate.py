"""Tests of geocsp.data.geoworld.generate: a world is a pure function of (config, seed)."""

from __future__ import annotations

import numpy as np

from geocsp.data.geoworld import generate_world

from .gwutils import TINY, world_arrays


def test_deterministic_for_a_seed() -> None:
    a, b, c = (world_arrays(generate_world(TINY, s)) for s in (3, 3, 4))
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not np.array_equal(a["train.features"], c["train.features"])
    assert not np.array_equal(a["truth.centers_lonlat"], c["truth.centers_lonlat"])
