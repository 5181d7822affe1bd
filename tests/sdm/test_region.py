"""Regions: bbox, GeoJSON polygon with a hole."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geocsp.errors import ConfigError, DatasetError
from geocsp.sdm.region import parse_bbox, parse_region


def _square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def test_polygon_with_hole(tmp_path) -> None:
    gj = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [_square(0, 0, 10, 10), _square(4, 4, 6, 6)]}}]}
    p = tmp_path / "r.geojson"
    p.write_text(json.dumps(gj))
    reg = parse_region(str(p))
    assert reg.bbox == (0.0, 0.0, 10.0, 10.0)
    pts = np.array([[1.0, 1.0], [5.0, 5.0], [11.0, 5.0], [9.5, 4.5]])
    assert reg.contains(pts).tolist() == [True, False, False, True]


def test_bbox_contains_and_errors(tmp_path) -> None:
    reg = parse_bbox("-10,-5,10,5")
    assert reg.contains(np.array([[0.0, 0.0], [20.0, 0.0]])).tolist() == [True, False]
    with pytest.raises(ConfigError, match="expected min_lon,min_lat,max_lon,max_lat"):
        parse_bbox("1,2,3")
    with pytest.raises(ConfigError, match="bounding box"):
        parse_bbox("10,0,-10,5")
    (tmp_path / "x.geojson").write_text('{"type": "Point", "coordinates": [0, 0]}')
    with pytest.raises(DatasetError, match="no Polygon"):
        parse_region(str(tmp_path / "x.geojson"))
