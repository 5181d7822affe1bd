"""The interactive map's data format, assets and self-contained page (docs/map.md).

The browser side (``web/app.js``, ``web/app.css``, ``web/index.html``) draws on Leaflet
(vendored in ``web/vendor/leaflet``, see its README for version and SHA-256) in the
plate-carrée CRS (EPSG:4326), with the bundled Natural Earth outlines as a vector layer:
no tile server and nothing from the network. The same page is served by
:mod:`geocsp.viz.server` (data fetched from ``/api/...``) or written as one file by
:func:`page` (every script, style, outline and grid inlined as ``window.GEOCSP_DATA``).

Grids travel as JSON objects (:func:`encode_grid`, :func:`encode_rgb`): the grid's edges
(``west, south, east, north`` degrees), ``w`` x ``h`` cells (row 0 northernmost), and the
cell values base64-encoded row-major: ``uint8`` codes 0..254 for ``vmin``..``vmax`` and 255
for no data (masked ocean, NaN), or RGBA bytes. Top-k tables (:func:`encode_topk`) hold
per-cell class indices (``uint16``/``uint32``, little-endian) and scores (``uint16``,
score x 65535).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np

from geocsp.errors import ConfigError, MissingFileError
from geocsp.viz.coastlines import license_notice, load_outlines

ATTRIBUTION = "Outlines: Natural Earth 1:110m (public domain), via world-atlas 2.0.2 (ISC licence)."
"""The short credit shown on the map (the full notice travels as ``outlines()["license"]``)."""
NODATA_CODE = 255
"""The ``uint8`` code of a cell without data."""
ASSETS: dict[str, tuple[str, str]] = {
    "leaflet.js": ("vendor/leaflet/leaflet.js", "text/javascript"),
    "leaflet.css": ("vendor/leaflet/leaflet.css", "text/css"),
    "app.js": ("app.js", "text/javascript"),
    "app.css": ("app.css", "text/css"),
    "LICENSE-leaflet.txt": ("vendor/leaflet/LICENSE", "text/plain"),
}
"""Served name -> (file under ``geocsp/viz/web/``, content type): the only static files."""


def asset(name: str) -> str:
    """Text of a bundled web asset.

    Args:
        name: a key of :data:`ASSETS` or ``index.html``.

    Returns:
        The file's text.

    Raises:
        ConfigError: ``name`` is not a bundled asset.
        MissingFileError: the file is missing from the installation.
    """
    rel = "index.html" if name == "index.html" else ASSETS.get(name, ("", ""))[0]
    if not rel:
        raise ConfigError(f"asset {name!r}: not one of {', '.join(sorted(ASSETS))}")
    ref = resources.files("geocsp.viz").joinpath("web").joinpath(rel)
    if not ref.is_file():
        raise MissingFileError(f"{ref}: bundled web asset missing; reinstall geocsp")
    return ref.read_text(encoding="utf-8")


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _edges(lons: np.ndarray, lats: np.ndarray, res_deg: float) -> dict[str, float]:
    half = res_deg / 2
    return {"west": float(lons[0]) - half, "east": float(lons[-1]) + half,
            "north": float(lats[0]) + half, "south": float(lats[-1]) - half, "res": float(res_deg)}


def _check(values: np.ndarray, lons: np.ndarray, lats: np.ndarray, depth: int | None) -> None:
    shape = (len(lats), len(lons)) if depth is None else (len(lats), len(lons), depth)
    if values.shape != shape:
        raise ConfigError(f"grid: expected shape {shape}, got {values.shape}")


def encode_grid(values: np.ndarray, lons: np.ndarray, lats: np.ndarray, res_deg: float, *,
                mask: np.ndarray | None = None, vmin: float | None = None,
                vmax: float | None = None, name: str = "") -> dict[str, Any]:
    """A scalar grid as the map's JSON object (uint8 codes, 255 = no data).

    Args:
        values: (H, W) values at the cell centres, row 0 northernmost.
        lons: (W,) cell-centre longitudes, degrees, west to east.
        lats: (H,) cell-centre latitudes, degrees, north to south.
        res_deg: cell size in degrees.
        mask: (H, W) bool, True = keep (e.g. land); None keeps every finite cell.
        vmin: value of code 0 (default: the smallest kept value).
        vmax: value of code 254 (default: the largest kept value).
        name: the layer's name (shown in the legend).

    Returns:
        ``{"name", "w", "h", "west", "south", "east", "north", "res", "vmin", "vmax", "data"}``.

    Raises:
        ConfigError: shapes that disagree.
    """
    v = np.asarray(values, dtype=np.float64)
    _check(v, lons, lats, None)
    keep = np.isfinite(v) if mask is None else np.isfinite(v) & np.asarray(mask, bool)
    lo = float(np.min(v[keep])) if vmin is None and keep.any() else float(vmin or 0.0)
    hi = float(np.max(v[keep])) if vmax is None and keep.any() else float(1.0 if vmax is None else vmax)
    span = hi - lo if hi > lo else 1.0
    codes = np.clip(np.rint((np.nan_to_num(v) - lo) / span * 254), 0, 254).astype(np.uint8)
    codes[~keep] = NODATA_CODE
    return {"name": name, "w": len(lons), "h": len(lats), **_edges(lons, lats, res_deg),
            "vmin": lo, "vmax": hi, "data": _b64(codes)}


def encode_rgb(rgb: np.ndarray, lons: np.ndarray, lats: np.ndarray, res_deg: float, *,
               mask: np.ndarray | None = None, name: str = "") -> dict[str, Any]:
    """An RGB grid (values in [0, 1], NaN = no data) as the map's JSON object (RGBA bytes).

    Args:
        rgb: (H, W, 3) colours in [0, 1] at the cell centres, row 0 northernmost.
        lons: (W,) cell-centre longitudes, degrees.
        lats: (H,) cell-centre latitudes, degrees.
        res_deg: cell size in degrees.
        mask: (H, W) bool, True = keep; None keeps every finite cell.
        name: the layer's name.

    Returns:
        ``{"name", "w", "h", "west", ..., "rgba": base64 (H*W*4 bytes)}``.

    Raises:
        ConfigError: shapes that disagree.
    """
    c = np.asarray(rgb, dtype=np.float64)
    _check(c, lons, lats, 3)
    keep = np.isfinite(c).all(axis=2) if mask is None else np.isfinite(c).all(axis=2) & np.asarray(mask, bool)
    out = np.zeros((*c.shape[:2], 4), np.uint8)
    out[..., :3] = np.clip(np.rint(np.nan_to_num(c) * 255), 0, 255)
    out[..., 3] = np.where(keep, 255, 0)
    return {"name": name, "w": len(lons), "h": len(lats), **_edges(lons, lats, res_deg), "rgba": _b64(out)}


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest scores of each row and their column indices, best first.

    Args:
        scores: (N, Q) scores; NaN counts as lowest.
        k: how many (clipped to Q).

    Returns:
        ((N, k) column indices int64, (N, k) scores float64).
    """
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    k = min(int(k), s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.tile(np.arange(k), (len(s), 1))
    vals = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def encode_topk(scores: np.ndarray, k: int) -> dict[str, Any]:
    """Per-cell top-k classes of an (H, W, Q) score grid, for clicks on a static page.

    Args:
        scores: (H, W, Q) scores in [0, 1] at the cell centres (NaN = no score).
        k: classes kept per cell (clipped to Q).

    Returns:
        ``{"k", "idx": base64 uint16 or uint32 (H*W*k), "idx_bytes", "score": base64 uint16
        (score x 65535; 0 for NaN)}``, row-major by cell then rank.
    """
    h, w, q = scores.shape
    idx, val = top_k(scores.reshape(h * w, q), k)
    dtype = np.dtype("<u2") if q < 65536 else np.dtype("<u4")
    codes = np.rint(np.clip(np.nan_to_num(val, neginf=0.0), 0, 1) * 65535).astype("<u2")
    return {"k": int(idx.shape[1]), "idx": _b64(idx.astype(dtype)), "idx_bytes": dtype.itemsize,
            "score": _b64(codes)}


def outlines() -> dict[str, Any]:
    """The bundled coastlines and borders as JSON-ready lists of ``[lat, lon]`` polylines.

    Returns:
        ``{"coast": [[[lat, lon], ...], ...], "border": [...], "attribution": str, "license": str}``
        (coordinates rounded to 0.01°; Leaflet's ``[lat, lon]`` order).
    """
    def lines(kind: str) -> list[list[list[float]]]:
        return [np.round(a[:, ::-1].astype(np.float64), 2).tolist() for a in load_outlines(kind)]

    return {"coast": lines("coast"), "border": lines("border"), "attribution": ATTRIBUTION,
            "license": license_notice()}


def _json_script(value: Any) -> str:
    """JSON safe to inline in a ``<script>`` element (no ``</``, no HTML comment openers)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def page(data: Mapping[str, Any] | None = None, *, title: str = "geocsp map") -> str:
    """The map page: linked assets (served) or everything inlined (``data`` given).

    Args:
        data: the static view (``info``, ``grids``, ``topk``, ``records``...; docs/map.md);
            None = the served page, which links ``/static/...`` and fetches ``/api/...``.
        title: the page title (HTML-escaped).

    Returns:
        The HTML text.
    """
    html = asset("index.html").replace("{{TITLE}}", _escape(title))
    if data is None:
        head = ('<link rel="stylesheet" href="static/leaflet.css">\n'
                '<link rel="stylesheet" href="static/app.css">')
        body = ('<script src="static/leaflet.js"></script>\n'
                '<script src="static/app.js"></script>')
    else:
        full = {**data, "outlines": outlines()}
        head = f"<style>\n{asset('leaflet.css')}\n</style>\n<style>\n{asset('app.css')}\n</style>"
        body = (f"<script>window.GEOCSP_DATA = {_json_script(full)};</script>\n"
                f"<script>\n{_inline_js(asset('leaflet.js'))}\n</script>\n"
                f"<script>\n{_inline_js(asset('app.js'))}\n</script>")
    return html.replace("{{HEAD}}", head).replace("{{SCRIPTS}}", body)


def _inline_js(text: str) -> str:
    """A script's text made safe to inline (no closing tag, no source-map fetch)."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("//# sourceMappingURL=")]
    return "\n".join(lines).replace("</script", "<\\/script")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

