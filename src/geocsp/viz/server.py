"""The interactive map's local web server: Python's threaded ``http.server``, JSON endpoints.

The server knows nothing about models: it validates every query parameter, calls a
:class:`MapBackend` (``geocsp.sdm.web.RunView`` for SDM and CSP prior runs) and writes its
answer as JSON. Endpoints (all ``GET``; docs/map.md):

* ``/`` the page, ``/static/NAME`` one of the bundled assets (:data:`~geocsp.viz.webmap.ASSETS`;
  any other name, ``..`` included, is 404 without touching the file system);
* ``/api/info``, ``/api/outlines``;
* ``/api/grid?layer=species|richness|embedding&species=NAME&res=DEG&date=MM-DD``;
* ``/api/point?lon=&lat=&k=&date=&species=``;
* ``/api/records?species=&limit=``.

A bad parameter (unknown, repeated, not a number, out of range; or a :class:`GeocspError`
from the backend, e.g. an unknown species) answers HTTP 400 with one line of JSON
``{"error": "..."}``; an unknown path 404, another method 405, a bug 500 (one line too).
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from geocsp.coords import validate_lonlat
from geocsp.errors import ConfigError, GeocspError
from geocsp.viz.webmap import ASSETS, asset, outlines, page

LAYERS = ("species", "richness", "embedding")
"""Grid layers the map asks for."""
MAX_TEXT = 500
"""Longest accepted text parameter (species name, date)."""
MAX_K = 50
"""Largest top-k of a point query."""
MAX_RECORDS = 100_000
"""Largest ``limit`` of a records query."""


class MapBackend(Protocol):
    """What the server needs from a run (all arguments already validated)."""

    def info(self) -> dict[str, Any]:
        """Run name, kind, class names, ``has_time``, ``has_embedding``, ``bbox``, ``res``."""

    def grid(self, layer: str, species: str | None, res_deg: float, date: str | None) -> dict[str, Any]:
        """One layer on the grid (:func:`geocsp.viz.webmap.encode_grid` / ``encode_rgb``)."""

    def point(self, lon: float, lat: float, k: int, date: str | None, species: str | None) -> dict[str, Any]:
        """Top-k classes at one point: ``{"lon", "lat", "date", "top": [[name, score], ...]}``."""

    def records(self, species: str | None, limit: int) -> dict[str, Any]:
        """Training records: ``{"lon": [...], "lat": [...], "species": [...], "total": n}``."""


class BadRequest(ConfigError):
    """A query parameter the server refuses (HTTP 400)."""


class Query:
    """The parsed query string of one request, with typed, validated getters.

    Args:
        query: the raw query string.
        allowed: the parameter names this endpoint takes.

    Raises:
        BadRequest: an unknown or repeated parameter.
    """

    def __init__(self, query: str, allowed: tuple[str, ...]) -> None:
        parsed = parse_qs(query, keep_blank_values=True, max_num_fields=32)
        for name, values in parsed.items():
            if name not in allowed:
                raise BadRequest(f"unknown parameter {name[:40]!r}; expected {', '.join(allowed) or 'none'}")
            if len(values) > 1:
                raise BadRequest(f"parameter {name!r} given {len(values)} times; expected once")
        self._q = {k: v[0] for k, v in parsed.items()}

    def text(self, name: str, default: str | None = None) -> str | None:
        """A text parameter (at most :data:`MAX_TEXT` characters, no control characters)."""
        v = self._q.get(name)
        if v is None or v == "":
            return default
        if len(v) > MAX_TEXT or any(ord(c) < 32 for c in v):
            raise BadRequest(f"{name}: expected at most {MAX_TEXT} printable characters")
        return v

    def number(self, name: str, lo: float, hi: float, default: float | None = None) -> float:
        """A finite float in [lo, hi]; a missing parameter without default is refused."""
        v = self._q.get(name)
        if v is None or v == "":
            if default is None:
                raise BadRequest(f"{name}: missing; expected a number in [{lo:g}, {hi:g}]")
            return default
        try:
            x = float(v)
        except ValueError:
            raise BadRequest(f"{name}: expected a number in [{lo:g}, {hi:g}], got {v[:40]!r}") from None
        if not (math.isfinite(x) and lo <= x <= hi):
            raise BadRequest(f"{name}: expected a number in [{lo:g}, {hi:g}], got {v[:40]!r}")
        return x

    def integer(self, name: str, lo: int, hi: int, default: int) -> int:
        """An integer in [lo, hi] (default when missing)."""
        v = self._q.get(name)
        if v is None or v == "":
            return default
        if not v.lstrip("-").isdigit() or not lo <= int(v) <= hi:
            raise BadRequest(f"{name}: expected an integer in [{lo}, {hi}], got {v[:40]!r}")
        return int(v)

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        """One of ``options`` (default when missing)."""
        v = self._q.get(name) or default
        if v not in options:
            raise BadRequest(f"{name}: expected one of {', '.join(options)}, got {v[:40]!r}")
        return v


def _grid(b: MapBackend, q: Query) -> dict[str, Any]:
    layer = q.choice("layer", LAYERS, "species")
    species = q.text("species")
    if layer == "species" and species is None:
        raise BadRequest("species: missing; expected a class name (see /api/info)")
    return b.grid(layer, species, q.number("res", 0.01, 10.0, float(b.info()["res"])), q.text("date"))


def _point(b: MapBackend, q: Query) -> dict[str, Any]:
    lon, lat = q.number("lon", -180, 180), q.number("lat", -90, 90)
    validate_lonlat([[lon, lat]], source="lon/lat")
    return b.point(lon, lat, q.integer("k", 1, MAX_K, 5), q.text("date"), q.text("species"))


def _records(b: MapBackend, q: Query) -> dict[str, Any]:
    return b.records(q.text("species"), q.integer("limit", 1, MAX_RECORDS, 20_000))


Endpoint = tuple[tuple[str, ...], Callable[[MapBackend, Query], dict[str, Any]]]
ENDPOINTS: Mapping[str, Endpoint] = {
    "/api/info": ((), lambda b, q: b.info()),
    "/api/outlines": ((), lambda b, q: outlines()),
    "/api/grid": (("layer", "species", "res", "date"), _grid),
    "/api/point": (("lon", "lat", "k", "date", "species"), _point),
    "/api/records": (("species", "limit"), _records),
}
"""Path -> (accepted parameters, handler)."""


class _Handler(BaseHTTPRequestHandler):
    """One request: route, validate, answer JSON / HTML / an asset."""

    server: MapServer
    server_version = "geocsp"

    def do_GET(self) -> None:
        """Answer a GET request."""
        url = urlsplit(self.path)
        try:
            if url.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, self.server.index, "text/html; charset=utf-8")
            elif url.path.startswith("/static/"):
                self._static(url.path.removeprefix("/static/"))
            elif url.path in ENDPOINTS:
                allowed, fn = ENDPOINTS[url.path]
                query = Query(url.query, allowed)
                with self.server.lock:
                    body = fn(self.server.backend, query)
                self._json(HTTPStatus.OK, body)
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such path: {url.path[:80]}")
        except GeocspError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # a bug: one line to the client, the traceback to the log
            self.log_error("internal error on %s: %r", url.path[:80], e)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(e).__name__}")

    def _refuse(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed; use GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _static(self, name: str) -> None:
        if name not in ASSETS:  # a fixed list: no path from the request reaches the file system
            self._error(HTTPStatus.NOT_FOUND, f"no such asset: {name[:80]}")
            return
        self._send(HTTPStatus.OK, asset(name), f"{ASSETS[name][1]}; charset=utf-8")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": " ".join(message.split())})

    def _json(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        self._send(status, text + "\n", "application/json")

    def _send(self, status: HTTPStatus, text: str, ctype: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Log one line to stderr unless the server is quiet."""
        if not self.server.quiet:
            sys.stderr.write(f"geocsp serve: {format % args}\n")


class MapServer(ThreadingHTTPServer):
    """A threaded HTTP server of one :class:`MapBackend` (backend calls are serialised).

    Args:
        backend: the run to show.
        host: address to bind (``127.0.0.1``: this machine only).
        port: TCP port (0 = any free port; see :attr:`port`).
        quiet: do not log requests.
        title: the page title.
    """

    daemon_threads = True

    def __init__(self, backend: MapBackend, host: str = "127.0.0.1", port: int = 8000, *,
                 quiet: bool = False, title: str = "geocsp map") -> None:
        self.backend = backend
        self.quiet = quiet
        self.lock = threading.Lock()
        self.index = page(None, title=title)
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise ConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT/``."""
        host = str(self.server_address[0])
        return f"http://{host if ':' not in host else f'[{host}]'}:{self.port}/"
