"""Datasets: the geocsp on-disk format, readers, splits and samplers (docs/dataset.md).

``make_world`` is the synthetic GeoWorld generator (:mod:`geocsp.data.geoworld`).
"""

from __future__ import annotations

from geocsp.data.dataset import GeoDataset, Split, SplitData, load_dataset, write_dataset
from geocsp.data.geoworld import make_world
from geocsp.data.splits import stratified_subset
from geocsp.data.validate import check_dataset

__all__ = [
    "GeoDataset",
    "Split",
    "SplitData",
    "check_dataset",
    "load_dataset",
    "make_world",
    "stratified_subset",
    "write_dataset",
]
