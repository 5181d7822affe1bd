"""Tests of the dataset format's array files and problem collector (geocsp.data.format)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from geocsp.data.format import (
    DEFAULT_PROBS,
    FORMAT,
    MANIFEST,
    VERSION,
    Problems,
    check_features,
    check_probs,
    feature_dtype,
    first_bad,
    load_npy,
    load_probs,
    save_npy,
    save_probs,
)
from geocsp.errors import DatasetError, MissingFileError


def test_format_names() -> None:
    assert (FORMAT, VERSION, MANIFEST, DEFAULT_PROBS) == ("geocsp-dataset", 1, "manifest.json", "default")


def test_save_and_load_arrays(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    save_npy(tmp_path / "x.npy", x, feature_dtype(x))
    loaded = load_npy(tmp_path / "x.npy")
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, x)
    assert feature_dtype(x.astype(np.float16)) == np.float16
    dense = save_probs(tmp_path, "p", np.full((2, 3), 0.5))
    sparse = save_probs(tmp_path, "s", scipy.sparse.eye(3, format="csr"))
    assert (dense, sparse) == ("p.npy", "s.npz")
    assert load_probs(tmp_path / dense).dtype == np.float32
    s = load_probs(tmp_path / sparse)
    assert scipy.sparse.issparse(s) and s.format == "csr" and s.dtype == np.float32


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=re.escape("a.npy: file not found")):
        load_npy(tmp_path / "a.npy")
    (tmp_path / "b.npy").write_bytes(b"\x93NUMPY broken")
    with pytest.raises(DatasetError, match=re.escape("b.npy: unreadable .npy array")):
        load_npy(tmp_path / "b.npy")
    # a text file, or an object array: numpy's advice to unpickle is not passed on
    for name, write in (("t.npy", lambda p: p.write_text("1,2,3\n")),
                        ("o.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)))):
        write(tmp_path / name)
        with pytest.raises(DatasetError, match=re.escape(f"{name}: not a numeric .npy array")) as info:
            load_npy(tmp_path / name)
        assert "pickle" not in str(info.value)
    with pytest.raises(DatasetError, match=re.escape("must be a dense .npy or a scipy-sparse .npz file")):
        load_probs(tmp_path / "p.csv")
    np.savez(tmp_path / "c.npz", a=np.zeros(2))
    with pytest.raises(DatasetError, match=re.escape("c.npz: not a scipy sparse .npz matrix")):
        load_probs(tmp_path / "c.npz")


def test_check_features_and_probs() -> None:
    f = np.zeros((3, 2), np.float32)
    assert check_features(f, 3, "f") == 2
    f[2, 1] = np.inf
    with pytest.raises(DatasetError, match=r"^f:2:dim 1: non-finite feature value inf"):
        check_features(f, 3, "f")
    assert check_features(f, 3, "f", verify_values=False) == 2
    with pytest.raises(DatasetError, match="features have 3 rows but the table has 4"):
        check_features(f, 4, "f")
    p = np.full((2, 3), 0.2, np.float32)
    check_probs(p, 2, 3, "p")
    p[1, 2] = 1.5
    with pytest.raises(DatasetError, match=r"^p:1:class 2: probability 1.5 outside \[0, 1\]"):
        check_probs(p, 2, 3, "p")
    with pytest.raises(DatasetError, match=r"^s:1:class 0: probability -1.0 outside"):
        check_probs(scipy.sparse.csr_matrix(np.array([[0.5, 0.0], [-1.0, 0.0]])), 2, 2, "s")
    with pytest.raises(DatasetError, match=r"must have shape \(N=2, Q=4\)"):
        check_probs(p, 2, 4, "p")


def test_first_bad_and_problems() -> None:
    a = np.zeros((5, 3))
    assert first_bad(a, np.isnan) is None
    a[3, 1] = np.nan
    assert first_bad(a, np.isnan) == (3, 1)
    collect = Problems(collect=True)
    with collect.guard():
        raise DatasetError("x: first")
    with collect.guard():
        raise DatasetError("y: second")
    assert collect.items == ["x: first", "y: second"]
    strict = Problems(collect=False)
    with pytest.raises(DatasetError, match="z"), strict.guard():
        raise DatasetError("z")
    assert strict.items == []
