"""Categorical covariates: levels, one-hot columns, the unseen-level rule, integer-code warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocsp.errors import DatasetError
from geocsp.sdm.categorical import (
    MAX_CODE_LEVELS,
    expand,
    fit_levels,
    level_strings,
    looks_categorical,
    onehot_names,
)


def test_levels_are_text_with_integer_codes_unified() -> None:
    s = pd.Series([3, "3.0", " 3 ", "", None, "wet", 10])
    assert level_strings(s).tolist()[:3] == ["3", "3", "3"] and level_strings(s).isna().tolist()[3:5] == [True, True]
    levels = fit_levels([pd.DataFrame({"veg": [2, 10, 2]}), pd.DataFrame({"veg": ["1", "wet"]})], ("veg",), "t")
    assert levels == {"veg": ["1", "2", "10", "wet"]}  # numeric codes in numeric order, then text
    assert onehot_names(levels) == ["veg=1", "veg=2", "veg=10", "veg=wet"]
    with pytest.raises(DatasetError, match=r"'soil' .*not found"):
        fit_levels([pd.DataFrame({"veg": [1]})], ("soil",), "t")


def test_unseen_level_gives_zero_columns_and_one_warning_line() -> None:
    df = pd.DataFrame({"veg": [1, 2, 7, 7, 9]})
    out, warnings = expand(df, {"veg": ["1", "2"]}, "sites.csv")
    np.testing.assert_array_equal(out[["veg=1", "veg=2"]].to_numpy(), [[1, 0], [0, 1], [0, 0], [0, 0], [0, 0]])
    assert len(warnings) == 1
    w = warnings[0]
    assert "\n" not in w and "sites.csv" in w and "'veg'" in w and "3 rows" in w and "7, 9" in w


def test_empty_cell_is_nan_in_fitting_and_refused_in_prediction() -> None:
    df = pd.DataFrame({"veg": [1.0, np.nan]})
    out, _ = expand(df, {"veg": ["1"]}, "t")
    assert np.isnan(out["veg=1"].iloc[1])
    with pytest.raises(DatasetError, match=r"sites.csv:1:veg: empty categorical cell"):
        expand(df, {"veg": ["1"]}, "sites.csv", refuse_empty=True)


def test_integer_code_columns_are_flagged_not_quantities() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"vegsys": rng.integers(1, 10, 200), "temp": rng.normal(20, 3, 200),
                       "elev": rng.integers(0, 2000, 200), "const": 4})
    lines = looks_categorical(df, ["vegsys", "temp", "elev", "const"], "po.csv")
    assert len(lines) == 1 and "'vegsys'" in lines[0] and "--categorical vegsys" in lines[0]
    df["many"] = np.arange(200) % (MAX_CODE_LEVELS + 1)
    assert looks_categorical(df, ["many"], "po.csv") == []
