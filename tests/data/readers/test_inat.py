"""Tests of the iNat2018/fMoW release reader."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geocsp.data import load_dataset
from geocsp.data.readers.inat import convert_inat, read_inat
from geocsp.errors import ConfigError, DatasetError, MissingFileError

_spec = importlib.util.spec_from_file_location("make_inat", Path(__file__).parents[1] / "fixtures" / "make_inat.py")
make_inat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_inat)


@pytest.mark.parametrize("dataset", ["inat2018", "fmow"])
def test_convert_release_layout(tmp_path: Path, dataset: str) -> None:
    src = make_inat.make_inat(tmp_path / "src", dataset)
    ds = load_dataset(convert_inat(src, tmp_path / "out", dataset))
    assert ds.classes == make_inat.CLASSES and ds.split_names == ["train", "val"]
    train, val = ds.split("train"), ds.split("val")
    assert len(train) == 6 and len(val) == 4 and ds.feature_dim == make_inat.FEATURE_DIM
    np.testing.assert_array_equal(train.labels, make_inat.expected_labels("train"))
    # the null location is kept as missing, not dropped; locations are matched by id
    np.testing.assert_array_equal(train.has_location, [True, True, False, True, True, True])
    locs = {d["id"]: d for d in json.loads((src / make_inat._names(dataset, "train")["loc"]).read_text())}
    np.testing.assert_allclose(train.lonlat[0], [locs[10]["lon"], locs[10]["lat"]])
    assert train.table["image"].tolist()[:2] == ["train/10.jpg", "train/11.jpg"]
    assert pd.isna(val.table["user_id"].iloc[0])  # null user_id kept
    feats = np.load(src / "features_inception_pretrain" / f"{dataset}_val_pretrain_net_feats.npy")
    np.testing.assert_array_equal(val.features, feats)
    assert val.prob_keys == ["default", "ratio0.050", "ratio0.100"] and train.prob_keys == []
    assert val.probs("ratio0.100").shape == (4, 3)


def test_read_inat_keeps_arrays_memory_mapped(tmp_path: Path) -> None:
    splits, classes, prov = read_inat(make_inat.make_inat(tmp_path / "src"))
    assert isinstance(splits["train"].features, np.memmap)
    assert prov["reader"].endswith("(inat2018)") and len(classes) == 3


def test_bad_release_inputs_write_nothing(tmp_path: Path) -> None:
    src = make_inat.make_inat(tmp_path / "src")
    ann = json.loads((src / "val2018.json").read_text())
    ann["annotations"][1]["category_id"] = 99
    (src / "val2018.json").write_text(json.dumps(ann))
    with pytest.raises(DatasetError, match=r"val2018.json:1:category_id: category 99 is not a known category id"):
        convert_inat(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    np.save(src / "features_inception_pretrain" / "inat2018_train_pretrain_net_feats.npy", np.zeros((5, 2)))
    with pytest.raises(DatasetError, match=r"train_pretrain_net_feats.npy: features have shape \(5, 2\)"):
        convert_inat(src, tmp_path / "out")
    with pytest.raises(ConfigError, match="unknown release dataset 'inat2021'"):
        read_inat(src, "inat2021")
    with pytest.raises(MissingFileError, match=re.escape("category.json: file not found")):
        read_inat(src, "fmow")


def test_non_numeric_coordinate_text_is_an_error(tmp_path: Path) -> None:
    """Only null / empty cells are missing locations; "north" names file:row:column."""
    src = make_inat.make_inat(tmp_path / "src")
    loc_file = src / make_inat._names("inat2018", "train")["loc"]
    locs = json.loads(loc_file.read_text())
    locs[1]["lat"] = "north"
    loc_file.write_text(json.dumps(locs))
    with pytest.raises(DatasetError, match=r"train2018_locations.json:1:lat: not a number: 'north'"):
        convert_inat(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    locs[1]["lat"] = ""  # empty text: a missing location, as null
    loc_file.write_text(json.dumps(locs))
    train = load_dataset(convert_inat(src, tmp_path / "out")).split("train")
    assert train.has_location.sum() == 4  # the null one of the fixture and this one


def test_convert_inat_refuses_an_existing_dataset(tmp_path: Path) -> None:
    src = make_inat.make_inat(tmp_path / "src")
    convert_inat(src, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"out: exists; pass --overwrite"):
        convert_inat(src, tmp_path / "out")
    convert_inat(src, tmp_path / "out", overwrite=True)
