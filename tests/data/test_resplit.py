"""geocsp data split: carving a val split out of a single-split dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geocsp.cli.main import cli
from geocsp.data.dataset import SplitData, load_dataset, write_dataset
from geocsp.data.resplit import split_dataset, split_indices
from geocsp.errors import ConfigError, DatasetError


def _dataset(tmp_path: Path, n: int = 50) -> Path:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-60, 60, n),
                          "label": rng.choice(["a", "b"], n)})
    feats = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return write_dataset(tmp_path / "src", {"train": SplitData(table, feats)}, ["a", "b"])


def test_random_split_partitions_rows_and_keeps_features_aligned(tmp_path: Path) -> None:
    out = split_dataset(_dataset(tmp_path), tmp_path / "out", val_frac=0.2, seed=1)
    ds = load_dataset(out)
    tr, va = ds.split("train"), ds.split("val")
    assert len(tr) + len(va) == 50 and len(va) == 10
    # row i of the source had features [3i, 3i+1, 3i+2]: every row keeps its own features
    src = load_dataset(tmp_path / "src").split("train")
    for s in (tr, va):
        idx = (np.asarray(s.features)[:, 0] / 3).astype(int)
        np.testing.assert_allclose(s.lonlat, src.lonlat[idx])
    assert set((np.asarray(tr.features)[:, 0] / 3).astype(int)).isdisjoint((np.asarray(va.features)[:, 0] / 3).astype(int))


def test_spatial_split_holds_out_whole_blocks() -> None:
    rng = np.random.default_rng(0)
    lonlat = np.c_[rng.uniform(-180, 180, 400), rng.uniform(-80, 80, 400)]
    tr, va = split_indices(lonlat, 0.25, "spatial", 30.0, 0)
    cell = lambda i: set(map(tuple, np.floor(lonlat[i] / 30.0).astype(int)))  # noqa: E731
    assert cell(tr).isdisjoint(cell(va))
    assert len(tr) + len(va) == 400


def test_bad_requests(tmp_path: Path) -> None:
    src = _dataset(tmp_path)
    with pytest.raises(ConfigError, match="val-frac"):
        split_dataset(src, tmp_path / "o1", val_frac=1.5)
    with pytest.raises(DatasetError, match="no split 'test'"):
        split_dataset(src, tmp_path / "o2", source_split="test")
    res = CliRunner().invoke(cli, ["data", "split", str(src), "--out", str(tmp_path / "o3"), "--from", "nope"])
    assert res.exit_code == 2 and "no split 'nope'" in res.output
    assert not (tmp_path / "o3").exists()
