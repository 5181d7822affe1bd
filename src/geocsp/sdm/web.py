"""The interactive map of a run: ``geocsp serve RUN`` and ``geocsp map ... --html`` (docs/map.md).

:class:`RunView` answers what the map asks of an SDM run (``model/``) or a fine-tuned CSP run
(``prior/``): the class list, one species' range, richness and embedding-RGB grids, the top-k
classes at a point (for a date when the run was fitted with time) and the training records.
It computes nothing itself: grids come from :mod:`geocsp.sdm.mapping` (the scores
``geocsp map`` draws), point scores from :func:`geocsp.sdm.predict.predict_table` (SDM) and
:func:`geocsp.training.inference.location_probs` (prior), embeddings from
:func:`geocsp.training.inference.batched_rows` and :func:`geocsp.viz.maps.pca_rgb`.
:func:`serve_run` serves it (:mod:`geocsp.viz.server`); :func:`write_html` writes the same
view as one self-contained HTML file with precomputed grids and per-cell top-k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from geocsp.checkpoints import find_artifact
from geocsp.data.labels import text_cells
from geocsp.data.tables import read_points, require_column
from geocsp.encoders.time import encode_day_of_year
from geocsp.errors import ConfigError
from geocsp.io import atomic_write_text
from geocsp.landmask import land_cells
from geocsp.prior import GeoPrior
from geocsp.prior.prior import KIND as PRIOR_KIND
from geocsp.prior.prior import grid_centres, grid_shape
from geocsp.sdm.dates import parse_date_option
from geocsp.sdm.mapping import map_bbox, run_grid_scores
from geocsp.sdm.model import KIND as SDM_KIND
from geocsp.sdm.model import FittedSDM
from geocsp.sdm.predict import load_presences, predict_table, species_index
from geocsp.training.inference import batched_rows, location_probs
from geocsp.viz.maps import grid_extent, pca_rgb
from geocsp.viz.server import MapServer
from geocsp.viz.webmap import encode_grid, encode_rgb, encode_topk, page, top_k

MAX_VALUES = 30_000_000
"""Largest cells x classes score grid held in memory (richness, top-k, all-species grids)."""
MAX_CELLS = 2_000_000
"""Largest grid (cells) of one layer."""
MAX_STATIC_SPECIES = 300
"""Most species layers inlined in one HTML file (choose with ``--species`` beyond that)."""
NICE_RES = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Default resolutions (degrees): the finest giving at most ~400 cells across the region."""

Scores = tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]
"""(lats (H,), lons (W,), scores (H, W, K), K class names)."""


class RunView:
    """What the map shows of one run (see module docs); the server's backend.

    Args:
        run_dir: an SDM run (``model/``) or a fine-tuned CSP run (``prior/``).
        region: ``min_lon,min_lat,max_lon,max_lat`` of the grids, or None (the rule of
            :mod:`geocsp.sdm.mapping`: raster extent, padded presences, else the globe).
        records: a CSV/Parquet table of points (``lon``, ``lat``, ``species_col``) shown as the
            training records; default the SDM run's ``presences.csv`` (none for a prior run).
        species_col: the records' class column.
        land_mask: leave ocean cells out of the overlays.
        res_deg: default cell size in degrees (None: from the region's size).

    Raises:
        CheckpointError: ``run_dir`` is neither kind of run.
        ConfigError: a prior with extra inputs other than time; a bad region.
        DatasetError: a records table without the columns.
    """

    def __init__(self, run_dir: str | Path, region: str | None = None, records: str | Path | None = None,
                 species_col: str = "species", land_mask: bool = True, res_deg: float | None = None) -> None:
        self.run_dir, self.region, self.land_mask = Path(run_dir), region, land_mask
        missing = "neither an SDM run (model/) nor a fine-tuned CSP run (prior/)"
        directory, self.kind = find_artifact(self.run_dir, [SDM_KIND, PRIOR_KIND], missing)
        self.sdm: FittedSDM | None = None
        self.prior: GeoPrior | None = None
        if self.kind == SDM_KIND:
            self.sdm = fitted = FittedSDM.load(directory)
            self.names = list(fitted.species)
            self.has_time = fitted.model is not None and bool(fitted.model.config.use_time)
            self.has_embedding = fitted.model is not None and fitted.model.position is not None
            rasters = list(fitted.rasters)
        else:
            self.prior = GeoPrior.from_pretrained(directory)
            self.names = list(self.prior.classes)
            extra = self.prior.encoder.config.extra_dim
            if extra not in (0, 2):
                raise ConfigError(f"{directory}: the prior takes {extra} extra inputs; cannot map it")
            self.has_time, self.has_embedding, rasters = extra == 2, True, []
        self.table = self._read_records(records, species_col)
        pts = None if self.table is None else self.table[["lon", "lat"]].to_numpy(float)
        self.bbox = map_bbox(region, rasters, pts) or (-180.0, -90.0, 180.0, 90.0)
        span = max(self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1])
        self.res = res_deg or next((r for r in NICE_RES if span / r <= 400), NICE_RES[-1])
        self._cache: dict[tuple[float, str | None], Scores] = {}

    def _read_records(self, records: str | Path | None, species_col: str) -> pd.DataFrame | None:
        if records is None:
            return load_presences(self.run_dir) if self.sdm is not None else None
        table, ll = read_points(records)
        require_column(table, records, species_col, "--species-col")
        return pd.DataFrame({"lon": ll[:, 0], "lat": ll[:, 1], "species": text_cells(table[species_col])})

    def info(self) -> dict[str, Any]:
        """The run's description for the page (JSON-ready)."""
        return {"run": self.run_dir.name, "kind": self.kind, "species": self.names, "has_time": self.has_time,
                "has_embedding": self.has_embedding, "bbox": list(self.bbox), "res": self.res,
                "records": 0 if self.table is None else len(self.table)}

    def _check_date(self, date: str | None) -> float:
        """Day of year of ``date`` (NaN for None); a date for a run without time is refused."""
        if date is None:
            return float("nan")
        if not self.has_time:
            raise ConfigError("date: this run was fitted without dates (no time input)")
        return parse_date_option(date, "date")  # also the serve API's query parameter

    def _grid_size(self, res_deg: float) -> int:
        h, w, _ = grid_shape(res_deg, self.bbox)
        cells = h * w
        if cells > MAX_CELLS:
            raise ConfigError(f"res: {res_deg:g}° gives {cells} cells over {self.bbox}; expected at most {MAX_CELLS}")
        return cells

    def scores(self, res_deg: float, date: str | None, species: str | None = None) -> Scores:
        """Scores at the cell centres: every class, or only ``species`` when all would be too many.

        Args:
            res_deg: cell size in degrees.
            date: ``MM-DD`` (or ISO date / day of year) for runs with time, or None.
            species: the one class needed (None: every class is needed).

        Returns:
            (lats, lons, scores (H, W, K), K names).

        Raises:
            ConfigError: a grid over :data:`MAX_CELLS`, or all classes over :data:`MAX_VALUES`
                when every class is needed; see :func:`geocsp.sdm.mapping.range_map`.
        """
        self._check_date(date)
        cells = self._grid_size(res_deg)
        key = (res_deg, date)
        if key in self._cache:
            return self._cache[key]
        if cells * len(self.names) > MAX_VALUES:
            if species is None or self.sdm is not None:
                raise ConfigError(f"res: {cells} cells x {len(self.names)} classes is too large for "
                                  f"richness/top-k/{self.kind} grids; use a coarser res")
            lats, lons, sc, names, *_ = run_grid_scores(self.run_dir, [species], self.region, date, res_deg, False)
            return lats, lons, sc, names
        lats, lons, sc, names, *_ = run_grid_scores(self.run_dir, [], self.region, date, res_deg, True)
        self._cache = {key: (lats, lons, sc, list(names))}  # one grid kept: a session looks at one res/date
        return self._cache[key]

    def _mask(self, lats: np.ndarray, lons: np.ndarray) -> np.ndarray | None:
        return land_cells((len(lats), len(lons)), grid_extent(lats, lons)) if self.land_mask else None

    def grid(self, layer: str, species: str | None, res_deg: float, date: str | None) -> dict[str, Any]:
        """One map layer on the grid.

        Args:
            layer: ``species`` (scores of ``species`` in [0, 1]), ``richness`` (sum of
                scores over classes) or ``embedding`` (the location embedding's first three
                principal components as RGB).
            species: the class of a ``species`` layer.
            res_deg: cell size in degrees.
            date: ``MM-DD`` for runs with time, or None.

        Returns:
            :func:`~geocsp.viz.webmap.encode_grid` / :func:`~geocsp.viz.webmap.encode_rgb` output.

        Raises:
            ConfigError: unknown species, no embedding (covariate-only SDM), a grid too large.
        """
        if layer == "embedding":
            return self._embedding(res_deg, date)
        if layer == "species":
            j = species_index(self.names, str(species))
            lats, lons, sc, names = self.scores(res_deg, date, str(species))
            values = sc[:, :, names.index(self.names[j])] if len(names) > 1 else sc[:, :, 0]
            return encode_grid(values, lons, lats, res_deg, mask=self._mask(lats, lons), vmin=0.0, vmax=1.0,
                               name=str(species))
        lats, lons, sc, _ = self.scores(res_deg, date)
        return encode_grid(sc.sum(axis=2), lons, lats, res_deg, mask=self._mask(lats, lons),
                           name="species richness (sum of scores)")

    def _embedding(self, res_deg: float, date: str | None) -> dict[str, Any]:
        doy = self._check_date(date)
        self._grid_size(res_deg)
        if self.prior is not None:
            encoder = self.prior.encoder
            timed = self.has_time
        elif self.sdm is not None and self.sdm.model is not None and self.sdm.model.position is not None:
            encoder = self.sdm.model.position
            timed = self.sdm.model.config.time_in_position
        else:
            raise ConfigError("layer embedding: this SDM has no position encoder (inputs covariates, or a KDE)")
        lons, lats = grid_centres(res_deg, self.bbox)
        t = encode_day_of_year(torch.tensor([doy])) if timed else None
        pts = np.stack(np.meshgrid(lons, lats), axis=-1).reshape(-1, 2)
        encoder.eval()
        emb = batched_rows(lambda x: encoder(x, None if t is None else t.expand(len(x), -1)), pts,
                           np.ones(len(pts), bool), int(encoder.dim), 65536, torch.device("cpu"))
        rgb = pca_rgb(emb.reshape(len(lats), len(lons), -1))
        return encode_rgb(rgb, lons, lats, res_deg, mask=self._mask(lats, lons), name="embedding (PCA → RGB)")

    def point_scores(self, lon: float, lat: float, date: str | None) -> np.ndarray:
        """(Q,) scores of every class at one point (SDM: as ``sdm predict``; prior: P(y|x)).

        Raises:
            ConfigError: a date for a run without time.
            DatasetError: an SDM on table covariates (no covariates at a point).
        """
        doy = self._check_date(date)
        if self.sdm is not None:
            site = pd.DataFrame({"lon": [lon], "lat": [lat], "date": [date or ""]})
            table = predict_table(self.sdm, site, "point", date_col="date" if date else None, wide=True)
            return table[self.names].to_numpy(float)[0]
        prior = self.prior
        assert prior is not None
        ex = encode_day_of_year(torch.tensor([doy])) if self.has_time else None
        probs = location_probs(lambda x: prior.logits(x, None if ex is None else ex.expand(len(x), -1)), prior,
                               np.array([[lon, lat]]), np.ones(1, bool), len(self.names), 1, torch.device("cpu"))
        return probs[0].astype(float)

    def point(self, lon: float, lat: float, k: int, date: str | None, species: str | None) -> dict[str, Any]:
        """Top-k classes at (lon, lat), plus ``species``' score when given (see :meth:`point_scores`)."""
        s = self.point_scores(lon, lat, date)
        idx, val = top_k(s[None, :], k)
        out: dict[str, Any] = {"lon": lon, "lat": lat, "date": date,
                               "top": [[self.names[i], round(float(v), 6)] for i, v in zip(idx[0], val[0], strict=True)]}
        if species is not None:
            out["species"] = [species, round(float(s[species_index(self.names, species)]), 6)]
        return out

    def records(self, species: str | None, limit: int) -> dict[str, Any]:
        """Training records (of ``species``, or all), at most ``limit`` (a seeded sample)."""
        df = self.table
        if df is None:
            return {"lon": [], "lat": [], "species": [], "total": 0}
        if species is not None:
            species_index(self.names, species)
            df = df[df["species"] == species]
        total = len(df)
        if total > limit:
            df = df.iloc[np.sort(np.random.default_rng(0).choice(total, limit, replace=False))]
        return {"lon": np.round(df["lon"].to_numpy(float), 4).tolist(),
                "lat": np.round(df["lat"].to_numpy(float), 4).tolist(),
                "species": df["species"].tolist(), "total": total}


def check_top_k(k: int) -> None:
    """Refuse a ``--top-k`` outside [1, 50] (the classes listed for a clicked cell).

    Raises:
        ConfigError: ``--top-k: expected an integer in [1, 50], got K``.
    """
    if not 1 <= k <= 50:
        raise ConfigError(f"--top-k: expected an integer in [1, 50], got {k}")


def write_html(
    run_dir: str | Path, out: str | Path, species: Sequence[str] = (), region: str | None = None,
    date: str | None = None, res_deg: float | None = None, land_mask: bool = True, k: int = 5,
    records: str | Path | None = None, species_col: str = "species",
) -> Path:
    """Write the interactive map of a run as one self-contained HTML file (no network needed).

    Inlined: Leaflet, the page's script and style, the outlines, one range grid per species
    (``species``, or every class up to :data:`MAX_STATIC_SPECIES`), the richness grid, the
    embedding-RGB grid (when the run has a position encoder), the per-cell top-``k`` classes
    (what a click shows) and the training records.

    Args:
        run_dir: an SDM run (``model/``) or a fine-tuned CSP run (``prior/``).
        out: the ``.html`` file to write (atomically).
        species: the species whose ranges are inlined (default: every class).
        region: ``min_lon,min_lat,max_lon,max_lat`` or None (see :class:`RunView`).
        date: ``MM-DD`` for runs with time, or None.
        res_deg: cell size in degrees (None: from the region's size).
        land_mask: leave ocean cells out of the overlays.
        k: classes per cell in the click table.
        records: points table shown as records (default the SDM run's presences).
        species_col: the records' class column.

    Returns:
        The written file.

    Raises:
        ConfigError: unknown species, too many species or cells, a bad ``k``; see :class:`RunView`.
    """
    check_top_k(k)
    view = RunView(run_dir, region, records, species_col, land_mask, res_deg)
    lats, lons, sc, names = view.scores(view.res, date)
    shown = list(species) or list(names)
    if len(shown) > MAX_STATIC_SPECIES:
        raise ConfigError(f"--html: {len(shown)} species; inline at most {MAX_STATIC_SPECIES} (choose with --species)")
    mask = view._mask(lats, lons)
    grids = {s: encode_grid(sc[:, :, species_index(names, s)], lons, lats, view.res, mask=mask, vmin=0.0, vmax=1.0,
                            name=s) for s in shown}
    geometry = {key: v for key, v in encode_grid(sc[:, :, 0], lons, lats, view.res).items() if key != "data"}
    data = {"info": {**view.info(), "species": shown, "date": date, "static": True},
            "classes": list(names), "grids": grids, "richness": view.grid("richness", None, view.res, date),
            "embedding": view.grid("embedding", None, view.res, date) if view.has_embedding else None,
            "topk": {**geometry, **encode_topk(sc, k)}, "records": view.records(None, 20_000)}
    p = Path(out)
    atomic_write_text(p, page(data, title=f"geocsp map: {view.run_dir.name}"))
    return p


def serve_run(
    run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, *, region: str | None = None,
    records: str | Path | None = None, species_col: str = "species", land_mask: bool = True,
    res_deg: float | None = None, announce: Callable[[str], None] = print, quiet: bool = False,
) -> None:
    """Serve the interactive map of a run until interrupted (Ctrl-C).

    Args:
        run_dir: an SDM run (``model/``) or a fine-tuned CSP run (``prior/``).
        host: address to bind; the default serves this machine only.
        port: TCP port (0 = any free port).
        region: ``min_lon,min_lat,max_lon,max_lat`` or None (see :class:`RunView`).
        records: points table shown as records (default the SDM run's presences).
        species_col: the records' class column.
        land_mask: leave ocean cells out of the overlays.
        res_deg: default cell size in degrees.
        announce: called once with the line that gives the URL.
        quiet: do not log requests.

    Raises:
        ConfigError: the address cannot be bound; see :class:`RunView`.
    """
    view = RunView(run_dir, region, records, species_col, land_mask, res_deg)
    server = MapServer(view, host, port, quiet=quiet, title=f"geocsp map: {view.run_dir.name}")
    announce(f"serving {view.run_dir} ({view.kind}, {len(view.names)} classes) at {server.url} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
