"""Location embeddings e(x) from a run, a prior or an encoder directory (spec §6).

The encoder runs in eval mode over (N, 2) (lon, lat) degrees in batches; the result is the
(N, d) float32 matrix, written as ``.npy`` or as a table (lon, lat, e0 ... e{d-1}). An
existing output is never replaced unless ``overwrite``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geocsp.checkpoints import load_encoder
from geocsp.coords import validate_lonlat
from geocsp.data.table_formats import WRITE_SUFFIXES
from geocsp.data.tables import read_points, refuse_existing, write_table
from geocsp.errors import ConfigError
from geocsp.io import atomic_write_npy
from geocsp.runtime import is_main_process, resolve_device
from geocsp.training.inference import batched_rows


def check_embedding_out(out: str | Path, overwrite: bool, points: str | Path | None = None) -> None:
    """Refuse an output that :func:`embed` cannot write, before any work.

    Args:
        out: the output path.
        overwrite: allow replacing an existing ``out``.
        points: the input table of points, which ``out`` may never replace.

    Raises:
        ConfigError: on a suffix other than ``.npy`` or a table's, an existing ``out``
            without ``overwrite``, or ``out`` being ``points``.
    """
    if not str(out).lower().endswith((".npy", *WRITE_SUFFIXES)):
        raise ConfigError(f"--out {out}: expected .npy or a table ({', '.join(WRITE_SUFFIXES)})")
    refuse_existing(out, overwrite, inputs=[points], file=True)


def embed(source: str | Path, lonlat: np.ndarray | str | Path, out: str | Path | None = None, *,
          batch_size: int = 4096, device: str = "auto", overwrite: bool = False) -> np.ndarray:
    """Location embeddings e(x) in eval mode.

    Args:
        source: a fine-tune run, a pre-train run, a prior directory or an encoder directory.
        lonlat: (N, 2) longitude, latitude in degrees, or a CSV/Parquet file with ``lon``,
            ``lat`` columns.
        out: optional ``.npy`` (the (N, d) matrix) or ``.csv`` / ``.parquet`` (lon, lat,
            e0 ... e{d-1}).
        batch_size: rows per chunk.
        device: ``auto``, ``cpu``, ``cuda`` ...
        overwrite: replace an existing ``out`` (else it is refused before any work).

    Returns:
        (N, d) float32 embeddings.

    Raises:
        CoordinateError: on invalid or swapped coordinates.
        CheckpointError: when no encoder is found at ``source``.
        ConfigError: on a bad output suffix or an existing ``out`` (both before any work).
    """
    if out is not None:
        check_embedding_out(out, overwrite, lonlat if isinstance(lonlat, (str, Path)) else None)
    if isinstance(lonlat, (str, Path)):
        _, pts = read_points(lonlat)
        pts = validate_lonlat(pts, source=str(lonlat))
    else:
        pts = validate_lonlat(lonlat, source="lonlat")
    dev = resolve_device(device)
    encoder = load_encoder(source).to(dev)
    encoder.eval()
    emb = batched_rows(encoder, pts, np.ones(len(pts), bool), int(encoder.dim), batch_size, dev)
    if out is not None and is_main_process():
        _write_embeddings(emb, pts, out)
    return emb


def _write_embeddings(emb: np.ndarray, pts: np.ndarray, out: str | Path) -> None:
    p = Path(out)
    if p.suffix.lower() == ".npy":
        atomic_write_npy(p, emb)
        return
    df = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
    df.insert(0, "lat", pts[:, 1])
    df.insert(0, "lon", pts[:, 0])
    write_table(df, p)


