"""Build src/geocsp/viz/land_110m.npz from the world-atlas TopoJSON files.

Usage::

    python tools/make_coastlines.py [SRC_DIR] [OUT.npz]

SRC_DIR holds ``world-atlas_land-110m.json``, ``world-atlas_countries-110m.json`` and
``world-atlas_LICENSE`` (npm world-atlas 2.0.2, ISC licence; the geometry is Natural Earth
1:110m, public domain). Default: ../shared/data/reference_geo.

TopoJSON stores each arc as quantised integer positions, delta-encoded: the absolute
position of point i is the cumulative sum of the deltas up to i, mapped to degrees as
``lon = x * scale[0] + translate[0]``, ``lat = y * scale[1] + translate[1]``.

The output holds two polyline sets, each as concatenated (M, 2) float32 lon/lat degrees
plus (K + 1,) int32 offsets (polyline j is ``lonlat[offsets[j]:offsets[j + 1]]``):
``coast_*`` (every land arc: coastlines) and ``border_*`` (arcs shared by two countries:
land borders). Segments running along the ±180° meridian (polygon closures at the map
edge, not real coastline) and segments jumping across it are cut out. The ISC notice is stored under ``license``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "reference_geo"
DEFAULT_OUT = ROOT / "src" / "geocsp" / "viz" / "land_110m.npz"


def decode_arcs(topo: dict) -> list[np.ndarray]:
    """All arcs of a quantised TopoJSON topology as (n_i, 2) float64 lon/lat degrees."""
    scale = np.asarray(topo["transform"]["scale"], dtype=np.float64)
    translate = np.asarray(topo["transform"]["translate"], dtype=np.float64)
    return [
        np.cumsum(np.asarray(a, dtype=np.float64), axis=0) * scale + translate for a in topo["arcs"]
    ]


def _arc_ids(arcs: list) -> list[int]:
    """Flatten the nested arc-index lists of a Polygon/MultiPolygon to arc ids (~i -> i)."""
    out: list[int] = []
    for a in arcs:
        if isinstance(a, list):
            out.extend(_arc_ids(a))
        else:
            out.append(a if a >= 0 else ~a)
    return out


def shared_arc_ids(topo: dict, obj: str) -> list[int]:
    """Arc ids used by two or more geometries of ``obj`` (interior borders)."""
    users: dict[int, set[int]] = {}
    for g, geom in enumerate(topo["objects"][obj]["geometries"]):
        for i in _arc_ids(geom.get("arcs", [])):
            users.setdefault(i, set()).add(g)
    return sorted(i for i, u in users.items() if len(u) > 1)


def split_at_antimeridian(line: np.ndarray, tol: float = 1e-6) -> list[np.ndarray]:
    """Cut out segments along a ±180° meridian and segments jumping across it."""
    on_edge = np.abs(np.abs(line[:, 0]) - 180.0) < tol
    same_side = np.sign(line[:-1, 0]) == np.sign(line[1:, 0])
    jump = np.abs(np.diff(line[:, 0])) > 180.0
    cut = (on_edge[:-1] & on_edge[1:] & same_side) | jump
    pieces, start = [], 0
    for i in np.flatnonzero(cut):
        pieces.append(line[start : i + 1])
        start = i + 1
    pieces.append(line[start:])
    return [p for p in pieces if len(p) >= 2]


def pack(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate polylines into (M, 2) float32 points and (K + 1,) int32 offsets."""
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lines])]).astype(np.int32)
    return np.concatenate(lines).astype(np.float32), offsets


def build(src: Path) -> dict[str, np.ndarray]:
    """The arrays stored in the bundled npz."""
    land = json.loads((src / "world-atlas_land-110m.json").read_text())
    countries = json.loads((src / "world-atlas_countries-110m.json").read_text())
    coast = [p for a in decode_arcs(land) for p in split_at_antimeridian(a)]
    c_arcs = decode_arcs(countries)
    borders = [
        p for i in shared_arc_ids(countries, "countries") for p in split_at_antimeridian(c_arcs[i])
    ]
    coast_xy, coast_off = pack(coast)
    border_xy, border_off = pack(borders)
    notice = (
        "Derived from world-atlas 2.0.2 (land-110m, countries-110m), Natural Earth 1:110m "
        "data (public domain). world-atlas licence (ISC):\n"
        + (src / "world-atlas_LICENSE").read_text()
    )
    return {
        "coast_lonlat": coast_xy,
        "coast_offsets": coast_off,
        "border_lonlat": border_xy,
        "border_offsets": border_off,
        "license": np.array(notice),
        "source": np.array(
            "tools/make_coastlines.py from world-atlas@2.0.2 land-110m.json, countries-110m.json"
        ),
    }


def main(argv: list[str]) -> None:
    src = Path(argv[1]) if len(argv) > 1 else DEFAULT_SRC
    out = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUT
    arrays = build(src)
    np.savez_compressed(out, **arrays)
    print(
        f"{out}: {len(arrays['coast_offsets']) - 1} coast lines, "
        f"{len(arrays['border_offsets']) - 1} border lines, {out.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main(sys.argv)
