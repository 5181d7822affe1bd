"""Regions for background sampling and maps: a lon/lat bounding box or a GeoJSON polygon."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geocsp.errors import ConfigError, DatasetError, MissingFileError


@dataclass(frozen=True)
class Region:
    """A bounding box, optionally refined by polygons (lon/lat degrees, EPSG:4326).

    Args:
        bbox: (min_lon, min_lat, max_lon, max_lat).
        rings: polygons as lists of rings, each an (M, 2) lon/lat array; the first ring of a
            polygon is its exterior, the others are holes. Empty = the box itself.
        name: where the region came from, for messages.
    """

    bbox: tuple[float, float, float, float]
    rings: tuple[tuple[np.ndarray, ...], ...] = ()
    name: str = "region"

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.bbox
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise ConfigError(
                f"{self.name}: bounding box {self.bbox} must be min_lon,min_lat,max_lon,max_lat "
                "with -180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90"
            )

    def contains(self, lonlat: np.ndarray) -> np.ndarray:
        """(N, 2) degrees -> (N,) bool: inside the box and (if any) inside a polygon, not in a hole."""
        lonlat = np.asarray(lonlat, dtype=np.float64)
        x0, y0, x1, y1 = self.bbox
        inside = (
            (lonlat[:, 0] >= x0) & (lonlat[:, 0] <= x1) & (lonlat[:, 1] >= y0) & (lonlat[:, 1] <= y1)
        )
        if not self.rings or not inside.any():
            return inside
        from matplotlib.path import Path as MplPath

        in_poly = np.zeros(len(lonlat), dtype=bool)
        pts = lonlat[inside]
        hit = np.zeros(len(pts), dtype=bool)
        for poly in self.rings:
            h = MplPath(poly[0]).contains_points(pts)
            for hole in poly[1:]:
                h &= ~MplPath(hole).contains_points(pts)
            hit |= h
        in_poly[np.flatnonzero(inside)] = hit
        return in_poly


def parse_bbox(text: str) -> Region:
    """``"min_lon,min_lat,max_lon,max_lat"`` -> Region.

    >>> parse_bbox("-125,-56,-32,40").bbox
    (-125.0, -56.0, -32.0, 40.0)
    """
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise ConfigError(f"--region '{text}': expected min_lon,min_lat,max_lon,max_lat or a .geojson file")
    return Region(vals, name=f"--region {text}")


def load_geojson_region(path: str | Path) -> Region:
    """Read Polygon/MultiPolygon geometries (bare, Feature or FeatureCollection) from GeoJSON.

    Raises:
        MissingFileError: the file does not exist.
        DatasetError: invalid JSON or no polygon in it.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: region file not found")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: not valid GeoJSON ({e})") from None
    geoms = []
    stack = [data]
    while stack:
        obj = stack.pop()
        if not isinstance(obj, dict):
            continue
        t = obj.get("type")
        if t == "FeatureCollection":
            stack.extend(obj.get("features", []))
        elif t == "Feature":
            stack.append(obj.get("geometry"))
        elif t == "GeometryCollection":
            stack.extend(obj.get("geometries", []))
        elif t == "Polygon":
            geoms.append(obj["coordinates"])
        elif t == "MultiPolygon":
            geoms.extend(obj["coordinates"])
    if not geoms:
        raise DatasetError(f"{p}: no Polygon or MultiPolygon geometry found")
    rings = tuple(tuple(np.asarray(r, dtype=np.float64)[:, :2] for r in poly) for poly in geoms)
    allpts = np.vstack([r for poly in rings for r in poly])
    bbox = (
        float(max(-180, allpts[:, 0].min())),
        float(max(-90, allpts[:, 1].min())),
        float(min(180, allpts[:, 0].max())),
        float(min(90, allpts[:, 1].max())),
    )
    return Region(bbox, rings, name=str(p))


def parse_region(text: str | None) -> Region | None:
    """A bbox string or a path to a .geojson/.json file; None stays None."""
    if text is None:
        return None
    if str(text).lower().endswith((".geojson", ".json")):
        return load_geojson_region(text)
    return parse_bbox(text)
