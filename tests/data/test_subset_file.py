"""A label subset given as a file (finetune --subset FILE[:COLUMN])."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geocsp.data.splits import training_subset
from geocsp.data.subset_file import parse_subset_spec, read_subset, subset_sha256
from geocsp.errors import DatasetError, MissingFileError

LABELS = np.array([0, 1, -1, 2, 0, 1, 2, -1, 0, 1])


def test_indices_from_text_csv_and_npy(tmp_path: Path) -> None:
    (tmp_path / "i.txt").write_text("8\n0\n3\n")
    (tmp_path / "i.csv").write_text("index\n8\n0\n3\n")
    np.save(tmp_path / "i.npy", np.array([8, 0, 3]))
    for name in ("i.txt", "i.csv", "i.npy"):
        np.testing.assert_array_equal(read_subset(tmp_path / name, LABELS), [0, 3, 8])


def test_zero_one_column(tmp_path: Path) -> None:
    keep = np.zeros(10, int)
    keep[[1, 4, 9]] = 1
    pd.DataFrame({"id": range(10), "used": keep}).to_csv(tmp_path / "m.csv", index=False)
    assert parse_subset_spec(f"{tmp_path / 'm.csv'}:used") == (tmp_path / "m.csv", "used")
    np.testing.assert_array_equal(read_subset(f"{tmp_path / 'm.csv'}:used", LABELS), [1, 4, 9])
    pd.DataFrame({"used": keep.astype(bool)}).to_parquet(tmp_path / "m.parquet")
    np.testing.assert_array_equal(read_subset(f"{tmp_path / 'm.parquet'}:used", LABELS), [1, 4, 9])


@pytest.mark.parametrize("text, match", [
    ("0\n10\n", r"i.txt:1: row index 10 out of range; the train split has 10 rows \(expected 0..9\)"),
    ("0\n-1\n", r"i.txt:1: row index -1 out of range"),
    ("0\n4\n0\n", r"i.txt:2: row index 0 appears more than once; expected unique indices"),
    ("0\n2\n", r"i.txt:1: train row 2 is unlabelled; a label subset holds labelled rows only"),
    ("0\nfive\n", r"i.txt:1: not a row index: 'five'; expected one integer per line"),
    ("0\n1.5\n", r"i.txt:1: not a row index: '1.5'"),
    ("index\n", r"i.txt: selects no row; expected at least one labelled train row"),
    ("a,b\n1,0\n", r"i.txt:0: several columns; name the 0/1 column to use: --subset FILE:COLUMN"),
])
def test_bad_index_files(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "i.txt").write_text(text)
    with pytest.raises(DatasetError, match=match):
        read_subset(tmp_path / "i.txt", LABELS)


def test_bad_npy_and_columns(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.array([0.0, 1.0]))
    with pytest.raises(DatasetError, match=r"f.npy: expected a 1-D integer array of train row indices"):
        read_subset(tmp_path / "f.npy", LABELS)
    pd.DataFrame({"used": [1, 0, 0, 2, 0, 0, 0, 0, 0, 0]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetError, match=r"m.csv:3:used: value 2.0 is not 0 or 1"):
        read_subset(f"{tmp_path / 'm.csv'}:used", LABELS)
    with pytest.raises(DatasetError, match=r"column 'kept' \(--subset FILE:COLUMN\) not found; available columns: used"):
        read_subset(f"{tmp_path / 'm.csv'}:kept", LABELS)
    pd.DataFrame({"used": [1, 0, 0]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DatasetError, match=r"s.csv: has 3 rows but the train split has 10; a 0/1 column must be"):
        read_subset(f"{tmp_path / 's.csv'}:used", LABELS)
    pd.DataFrame({"used": [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]}).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(DatasetError, match=r"u.csv:0:used: train row 2 is unlabelled"):
        read_subset(f"{tmp_path / 'u.csv'}:used", LABELS)
    with pytest.raises(MissingFileError):
        read_subset(tmp_path / "nowhere.txt", LABELS)


def test_training_subset_saves_maps_and_pins(tmp_path: Path) -> None:
    has_loc = np.ones(10, bool)
    has_loc[4] = False  # a labelled row without a location cannot train the prior
    (tmp_path / "i.txt").write_text("0\n4\n5\n9\n")
    run = tmp_path / "run"
    pos = training_subset(run, LABELS, has_loc, 1.0, 0, subset=str(tmp_path / "i.txt"))
    usable = np.flatnonzero((LABELS >= 0) & has_loc)
    np.testing.assert_array_equal(usable[pos], [0, 5, 9])
    np.testing.assert_array_equal(np.load(run / "subset" / "file.npy"), [0, 4, 5, 9])
    meta = json.loads((run / "subset" / "file.json").read_text())
    assert meta["sha256"] == subset_sha256(tmp_path / "i.txt") and meta["rows"] == 4
    np.testing.assert_array_equal(training_subset(run, LABELS, has_loc, 1.0, 0, subset=str(tmp_path / "i.txt")), pos)
    (tmp_path / "i.txt").write_text("0\n5\n")
    with pytest.raises(DatasetError, match="saved subset came from another file or other labels"):
        training_subset(run, LABELS, has_loc, 1.0, 0, subset=str(tmp_path / "i.txt"))
    with pytest.raises(DatasetError, match=r"i.txt: SHA-256 .* differs from the run's subset_sha256"):
        subset_sha256(tmp_path / "i.txt", meta["sha256"])
    # without a file: the stratified subset, unchanged
    strat = training_subset(tmp_path / "r2", LABELS, has_loc, 1.0, 0)
    np.testing.assert_array_equal(strat, np.arange(len(usable)))
