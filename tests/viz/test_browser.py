"""The interactive map in a real browser: headless Chromium driven by Selenium.

Checks what a person would: the map renders with its outlines and records, a search finds a
species and draws its range, the threshold slider changes the overlay, a click shows the
top classes with scores that are the run's. Served (``geocsp serve``) and static
(``geocsp map --html``, opened from a file) pages. Skipped without chromium, chromedriver or
selenium (CI: ``apt-get install chromium chromium-driver``, ``pip install selenium``). Set
``GEOCSP_MAP_SCREENSHOT=PATH`` to keep the served page's screenshot (docs/img/map.png).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.viz.webruns import REGION, SPECIES

from geocsp.sdm.web import RunView, write_html
from geocsp.viz.server import MapServer

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402 (after the skip)
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

OPAQUE = """
var c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;
for (var i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
return n;"""
IMG_OPAQUE = """
var img = arguments[0], c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
var ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
var d = ctx.getImageData(0, 0, c.width, c.height).data, n = 0;
for (var i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
return [c.width, c.height, n];"""


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def server(sdm_run: Path) -> Iterator[MapServer]:
    srv = MapServer(RunView(sdm_run, region=REGION, res_deg=1.0), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def wait(d: Any, fn: Any, what: str, timeout: float = 20) -> Any:
    return WebDriverWait(d, timeout, poll_frequency=0.1).until(lambda _: fn(), message=what)


def _open_and_check_render(d: Any, url: str) -> None:
    d.get(url)
    wait(d, lambda: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "page ready")
    assert d.find_element(By.ID, "status").text == ""
    lines = d.find_element(By.CSS_SELECTOR, ".leaflet-lines-pane canvas")
    assert d.execute_script(OPAQUE, lines) > 500  # coastlines drawn
    assert d.find_element(By.ID, "map").get_attribute("data-records") == "60"
    assert d.execute_script(OPAQUE, d.find_element(By.CSS_SELECTOR, ".leaflet-points-pane canvas")) > 50


def _search_and_draw(d: Any, name: str) -> Any:
    box = d.find_element(By.ID, "species-search")
    box.clear()
    box.send_keys(name[:4].lower())
    item = wait(d, lambda: next((li for li in d.find_elements(By.CSS_SELECTOR, "#matches li")
                                 if li.text == name), None), f"search lists {name}")
    item.click()
    wait(d, lambda: d.find_element(By.ID, "map").get_attribute("data-range") == name, "range drawn")
    img = d.find_element(By.CSS_SELECTOR, ".leaflet-ranges-pane img.leaflet-image-layer")
    wait(d, lambda: d.execute_script("return arguments[0].complete", img), "overlay loaded")
    w, h, n = d.execute_script(IMG_OPAQUE, img)
    assert (w, h) == (40, 20) or (w, h) == (20, 10)
    assert 0.2 * w * h < n < w * h  # land cells drawn, sea cells left out
    return img


def _threshold_hides_cells(d: Any) -> None:
    d.execute_script("var t = document.getElementById('threshold'); t.value = 0.99;"
                     "t.dispatchEvent(new Event('input'));")
    img = d.find_element(By.CSS_SELECTOR, ".leaflet-ranges-pane img.leaflet-image-layer")
    wait(d, lambda: d.execute_script("return arguments[0].complete", img), "overlay reloaded")
    full = d.execute_script(IMG_OPAQUE, img)[2]
    d.execute_script("var t = document.getElementById('threshold'); t.value = 0;"
                     "t.dispatchEvent(new Event('input'));")
    img = d.find_element(By.CSS_SELECTOR, ".leaflet-ranges-pane img.leaflet-image-layer")
    wait(d, lambda: d.execute_script("return arguments[0].complete", img), "overlay reloaded")
    assert full < d.execute_script(IMG_OPAQUE, img)[2]


def _click(d: Any, lon: float, lat: float) -> list[tuple[str, float]]:
    el = d.find_element(By.ID, "map")
    x, y = d.execute_script("var p = window.geocspMap.latLngToContainerPoint([arguments[1], arguments[0]]);"
                            "return [p.x, p.y];", lon, lat)
    ActionChains(d).move_to_element_with_offset(el, int(x - el.size["width"] / 2),
                                                int(y - el.size["height"] / 2)).click().perform()
    popup = wait(d, lambda: next(iter(d.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content")), None), "popup")
    rows = wait(d, lambda: popup.find_elements(By.CSS_SELECTOR, "tr.top"), "scores in the popup")
    out = []
    for r in rows:
        cells = r.find_elements(By.TAG_NAME, "td")
        out.append((cells[1].text, float(cells[2].text)))
    head = popup.find_element(By.TAG_NAME, "b").text
    got = [float(v) for v in re.findall(r"-?\d+\.\d+", head)]
    assert np.allclose(got, [lon, lat], atol=0.05), head
    return out


def test_served_map_in_chromium(driver: Any, server: MapServer, sdm_run: Path, tmp_path: Path) -> None:
    _open_and_check_render(driver, server.url)
    _search_and_draw(driver, SPECIES[1])
    _threshold_hides_cells(driver)
    top = _click(driver, 0.0, 8.0)  # Ghana/Togo: land
    scores = RunView(sdm_run).point_scores(0.0, 8.0, None)
    assert [n for n, _ in top] == [SPECIES[i] for i in np.argsort(-scores)]
    assert np.allclose([s for _, s in top], np.sort(scores)[::-1], atol=0.01)  # click within ~0.05°
    path = Path(os.environ.get("GEOCSP_MAP_SCREENSHOT") or tmp_path / "map.png")
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000


def test_static_html_in_chromium(driver: Any, sdm_run: Path, tmp_path: Path) -> None:
    out = write_html(sdm_run, tmp_path / "map.html", region=REGION, res_deg=2.0, k=3)
    _open_and_check_render(driver, out.resolve().as_uri())
    _search_and_draw(driver, SPECIES[2])  # "Quercus <robur>": HTML in a name stays text
    top = _click(driver, 1.0, 7.0)  # the centre of a 2° cell
    scores = RunView(sdm_run).point_scores(1.0, 7.0, None)
    assert [n for n, _ in top] == [SPECIES[i] for i in np.argsort(-scores)]
    assert np.allclose([s for _, s in top], np.sort(scores)[::-1], atol=1e-3)
