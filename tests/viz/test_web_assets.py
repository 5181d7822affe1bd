"""The interactive map's data format and page (geocsp.viz.webmap): encodings, assets, offline page."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib import resources

import numpy as np
import pytest

from geocsp.errors import ConfigError
from geocsp.viz.webmap import (
    ASSETS,
    NODATA_CODE,
    asset,
    encode_grid,
    encode_rgb,
    encode_topk,
    outlines,
    page,
    top_k,
)

LONS = np.array([-1.5, -0.5, 0.5, 1.5])
LATS = np.array([0.5, -0.5])


def _codes(g: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(g["data"]), np.uint8).reshape(g["h"], g["w"])


def test_encode_grid_codes_mask_and_edges() -> None:
    v = np.array([[0.0, 0.5, 1.0, np.nan], [0.25, 0.75, 0.1, 0.9]])
    mask = np.array([[True, True, True, True], [True, False, True, True]])
    g = encode_grid(v, LONS, LATS, 1.0, mask=mask, vmin=0.0, vmax=1.0, name="x")
    assert (g["west"], g["east"], g["south"], g["north"]) == (-2.0, 2.0, -1.0, 1.0)
    c = _codes(g)
    assert c[0, 3] == NODATA_CODE and c[1, 1] == NODATA_CODE  # NaN and masked
    keep = c != NODATA_CODE
    assert np.abs(c[keep] / 254 - v[keep]).max() <= 0.5 / 254
    auto = encode_grid(v, LONS, LATS, 1.0)
    assert auto["vmin"] == 0.0 and auto["vmax"] == 1.0
    with pytest.raises(ConfigError, match=r"expected shape \(2, 4\)"):
        encode_grid(v.T, LONS, LATS, 1.0)


def test_encode_rgb_alpha_is_the_mask() -> None:
    rgb = np.random.default_rng(0).random((2, 4, 3))
    rgb[0, 0] = np.nan
    g = encode_rgb(rgb, LONS, LATS, 1.0, mask=np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool))
    px = np.frombuffer(base64.b64decode(g["rgba"]), np.uint8).reshape(2, 4, 4)
    assert px[0, 0, 3] == 0 and px[1, 3, 3] == 0 and (px[0, 1:, 3] == 255).all()
    assert np.abs(px[1, 0, :3] / 255 - rgb[1, 0]).max() <= 0.5 / 255 + 1e-12


def test_top_k_matches_a_full_sort() -> None:
    s = np.random.default_rng(1).random((50, 9))
    s[3, 4] = np.nan
    idx, val = top_k(s, 4)
    want = np.argsort(-np.nan_to_num(s, nan=-np.inf), axis=1)[:, :4]
    assert (idx == want).all() and np.allclose(val, np.take_along_axis(s, want, axis=1))
    assert top_k(s, 20)[0].shape == (50, 9)


def test_encode_topk_decodes() -> None:
    s = np.random.default_rng(2).random((2, 3, 6))
    t = encode_topk(s, 3)
    idx = np.frombuffer(base64.b64decode(t["idx"]), "<u2").reshape(6, 3)
    sc = np.frombuffer(base64.b64decode(t["score"]), "<u2").reshape(6, 3) / 65535
    want = np.argsort(-s.reshape(6, 6), axis=1)[:, :3]
    assert (idx == want).all() and np.abs(sc - np.take_along_axis(s.reshape(6, 6), want, 1)).max() < 1e-4


def test_outlines_are_lat_lon_lines() -> None:
    o = outlines()
    assert len(o["coast"]) > 100 and len(o["border"]) > 100
    pts = np.array([p for line in o["coast"] for p in line])
    assert np.abs(pts[:, 0]).max() <= 90 and np.abs(pts[:, 1]).max() <= 180 and np.abs(pts[:, 1]).max() > 170


def test_vendored_leaflet_matches_its_readme() -> None:
    readme = resources.files("geocsp.viz").joinpath("web/vendor/leaflet/README.md").read_text()
    for name in ("leaflet.js", "leaflet.css", "LICENSE"):
        data = resources.files("geocsp.viz").joinpath(f"web/vendor/leaflet/{name}").read_bytes()
        assert hashlib.sha256(data).hexdigest() in readme, name
    assert "1.9.4" in readme and "BSD" in asset("LICENSE-leaflet.txt") + readme
    assert set(ASSETS) >= {"leaflet.js", "leaflet.css", "app.js", "app.css"}
    with pytest.raises(ConfigError, match="not one of"):
        asset("../webmap.py")


def test_static_page_is_self_contained_and_escapes_names() -> None:
    g = encode_grid(np.zeros((2, 4)), LONS, LATS, 1.0, name="a</script><b>")
    html = page({"info": {"run": "r", "species": ["a</script><b>"]}, "grids": {"a</script><b>": g}}, title="<t>")
    assert "<title>&lt;t&gt;</title>" in html
    assert "a</script>" not in html  # a name cannot end the inlined script
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)  # nothing loaded from anywhere
    assert "sourceMappingURL" not in html
    blob = re.search(r"window\.GEOCSP_DATA = (.*?);</script>", html, re.S)
    assert blob is not None
    data = json.loads(blob.group(1).replace("<\\/", "</"))
    assert data["info"]["species"] == ["a</script><b>"] and len(data["outlines"]["coast"]) > 100
    assert asset("leaflet.js")[:200] in html and asset("app.js")[:200] in html
