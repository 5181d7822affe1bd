"""geocsp.crs.to_lonlat: projected coordinates to (lon, lat) degrees with pyproj."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from geocsp.crs import parse_crs, to_lonlat
from geocsp.errors import ConfigError

# A disdat AWT presence (README: x, y are metres in EPSG:28355, GDA94 / MGA zone 55), with
# the lon/lat that the data set itself lists for it.
AWT_XY = (310878.0, 8253485.0)
AWT_LONLAT = (145.234436, -15.790139)


def test_known_mga55_point_matches_the_data_sets_own_lonlat() -> None:
    pytest.importorskip("pyproj")
    ll = to_lonlat([AWT_XY[0]], [AWT_XY[1]], "EPSG:28355")
    assert ll.shape == (1, 2)
    np.testing.assert_allclose(ll[0], AWT_LONLAT, atol=2e-6)


def test_degrees_pass_through_and_nan_stays_nan() -> None:
    pytest.importorskip("pyproj")
    np.testing.assert_array_equal(to_lonlat([10.0], [20.0], None), [[10.0, 20.0]])
    np.testing.assert_array_equal(to_lonlat([10.0], [20.0], "EPSG:4326"), [[10.0, 20.0]])
    ll = to_lonlat([AWT_XY[0], np.nan], [AWT_XY[1], 1.0], "EPSG:28355")
    assert np.isfinite(ll[0]).all() and np.isnan(ll[1]).all()


def test_unknown_crs_is_one_line_naming_the_flag() -> None:
    pytest.importorskip("pyproj")
    with pytest.raises(ConfigError) as e:
        to_lonlat([1.0], [2.0], "EPSG:999999")
    msg = str(e.value)
    assert "\n" not in msg and "--crs" in msg and "EPSG:999999" in msg and "EPSG:28355" in msg


def test_missing_pyproj_is_one_line_with_the_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyproj", None)  # import pyproj -> ImportError
    with pytest.raises(ConfigError) as e:
        parse_crs("EPSG:28355", source="records.crs")
    msg = str(e.value)
    assert "\n" not in msg and "records.crs" in msg and "pyproj" in msg and "pip install" in msg
    assert to_lonlat([1.0], [2.0], None).tolist() == [[1.0, 2.0]]  # degrees need no pyproj
