"""Datasets: the geocsp on-disk format, readers, splits and samplers (docs/dataset.md).

``make_world`` (the synthetic GeoWorld generator) is imported lazily from
:mod:`geocsp.data.geoworld` on first access.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from geocsp.data.check import check_dataset
from geocsp.data.dataset import GeoDataset, Split, SplitData, load_dataset, write_dataset
from geocsp.data.splits import stratified_subset

__all__ = [
    "GeoDataset",
    "Split",
    "SplitData",
    "check_dataset",
    "load_dataset",
    "stratified_subset",
    "write_dataset",
]

if importlib.util.find_spec("geocsp.data.geoworld") is not None:
    __all__ += ["make_world"]


def __getattr__(name: str) -> Any:
    if name == "make_world":
        from geocsp.data.geoworld import make_world

        return make_world
    raise AttributeError(f"module 'geocsp.data' has no attribute {name!r}")
