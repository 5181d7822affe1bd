"""The bundled outline file decodes to plausible polylines; the builder reproduces it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from geocsp.errors import ConfigError
from geocsp.viz.coastlines import DATA_FILE, license_notice, load_outlines

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind,lo,hi", [("coast", 100, 400), ("border", 150, 600)])
def test_outlines_in_range(kind: str, lo: int, hi: int) -> None:
    lines = load_outlines(kind)
    assert lo <= len(lines) <= hi
    pts = np.concatenate(lines)
    assert pts.shape[1] == 2 and 2000 < len(pts) < 20_000
    assert (np.abs(pts[:, 0]) <= 180).all() and (np.abs(pts[:, 1]) <= 90).all()
    assert all(len(x) >= 2 for x in lines)
    # no segment jumps across the map (antimeridian wrap-around was cut out)
    assert max(np.abs(np.diff(x[:, 0])).max() for x in lines) < 90


def test_outlines_contain_known_coast() -> None:
    pts = np.concatenate(load_outlines("coast"))
    # Cape of Good Hope (18.5E, 34.4S) and Gibraltar (5.6W, 36.0N) lie near coastline points
    for lon, lat in ((18.5, -34.4), (-5.6, 36.0)):
        assert np.hypot(pts[:, 0] - lon, pts[:, 1] - lat).min() < 1.0


def test_bundle_small_and_licensed() -> None:
    path = ROOT / "src" / "geocsp" / "viz" / DATA_FILE
    assert path.stat().st_size < 300_000
    assert "ISC" in license_notice() and "Michael Bostock" in license_notice()


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="kind: expected one of"):
        load_outlines("rivers")


def test_builder_reproduces_bundle(shared_data: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_coastlines", ROOT / "tools" / "make_coastlines.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built = mod.build(shared_data / "reference_geo")
    bundled = np.load(ROOT / "src" / "geocsp" / "viz" / DATA_FILE)
    for key in ("coast_lonlat", "coast_offsets", "border_lonlat", "border_offsets"):
        np.testing.assert_array_equal(built[key], bundled[key])
    # decoding check on a hand-made topology: deltas (10, 20), (1, 1), (-2, 0)
    topo = {
        "transform": {"scale": [0.5, 0.25], "translate": [-10.0, 5.0]},
        "arcs": [[[10, 20], [1, 1], [-2, 0]]],
    }
    np.testing.assert_allclose(
        mod.decode_arcs(topo)[0], [[-5.0, 10.0], [-4.5, 10.25], [-5.5, 10.25]]
    )
