"""Tests of geocsp.data.geoworld.config."""

from __future__ import annotations

import pytest

from geocsp.data.geoworld import GeoWorldConfig, get_world_config
from geocsp.errors import ConfigError


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="num_genera"):
        GeoWorldConfig(num_classes=5, num_genera=6)
    with pytest.raises(ConfigError, match="train_rows"):
        GeoWorldConfig(num_classes=10, num_genera=2, train_rows=5)
    with pytest.raises(ConfigError, match=r"unknown config key.*did you mean 'num_classes'"):
        get_world_config("small", num_clases=3)
    with pytest.raises(ConfigError, match="unknown GeoWorld preset 'smal'; did you mean 'small'"):
        get_world_config("smal")
