"""Survey groups: which presence/absence sites count for which species (geocsp.sdm.groups)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocsp.errors import ConfigError, DatasetError
from geocsp.sdm.groups import evaluate_sites, run_groups, site_table, species_groups


def test_species_groups_from_records() -> None:
    df = pd.DataFrame({"sp": ["a", "a", "b", "c"], "g": ["bird", "bird", "plant", ""]})
    assert species_groups(df, "sp", "g", "po.csv") == {"a": ["bird"], "b": ["plant"]}
    df["g"] = ["bird", "bird", "plant", np.nan]  # a missing group is no group, not 'nan'
    assert species_groups(df, "sp", "g", "po.csv") == {"a": ["bird"], "b": ["plant"]}
    with pytest.raises(DatasetError, match="'grp'"):
        species_groups(df, "sp", "grp", "po.csv")


def test_wide_tables_stacked_score_each_species_on_its_own_rows() -> None:
    bird = pd.DataFrame({"group": "bird", "lon": [0.0, 1.0, 2.0], "lat": 0.0, "a": [1, 0, 1]})
    plant = pd.DataFrame({"group": "plant", "lon": [5.0, 6.0], "lat": 0.0, "b": [0, 1]})
    df = pd.concat([bird, plant], ignore_index=True)
    t = site_table(df, ["a", "b", "z"], "pa")
    assert t.scored.sum(axis=0).tolist() == [3, 2, 0]
    assert t.y[:, 0].tolist() == [1, 0, 1, 0, 0]
    # with groups from the run: 'a' is a plant species here, so it is scored on plant rows only
    t = site_table(df, ["a", "b"], "pa", group_col="group", groups={"a": ["plant"], "b": ["plant"]})
    assert t.scored[:, 0].sum() == 0 and t.scored[:, 1].sum() == 2
    with pytest.raises(DatasetError, match=r"pa:1:a: expected 0, 1 or empty"):
        site_table(pd.DataFrame({"lon": [0, 1], "lat": [0, 0], "a": [1, 2]}), ["a"], "pa")
    with pytest.raises(DatasetError, match="no 'species' column"):
        site_table(pd.DataFrame({"lon": [0], "lat": [0], "q": [1]}), ["a"], "pa")


def test_long_table_groups_derived_from_where_species_were_recorded() -> None:
    df = pd.DataFrame({"species": ["a", "b", "a", "b"], "lon": [0.0, 1.0, 2.0, 3.0], "lat": 0.0,
                       "g": ["bird", "plant", "bird", "plant"]})
    t = site_table(df, ["a", "b"], "pa", group_col="g")
    assert t.scored[:, 0].tolist() == [True, False, True, False]
    res = evaluate_sites(t, np.array([[0.9, 0.1], [0.5, 0.5], [0.8, 0.2], [0.4, 0.6]]), ["a", "b"], {"a": ["bird"]})
    assert res["per_species"]["a"]["n_sites"] == 2 and np.isnan(res["per_species"]["a"]["auc"])  # no absence
    assert res["n_species_scored"] == 0


def test_a_long_table_row_without_a_site_is_refused_not_merged_into_the_last_site() -> None:
    """pandas factorizes a missing key to -1, which indexed the last site's row of the matrix."""
    df = pd.DataFrame({"species": ["a", "b", "a"], "lon": [0.0, 1.0, 2.0], "lat": 0.0, "site": ["s1", None, "s3"]})
    with pytest.raises(DatasetError, match=r"pa\.csv:1:site: a row without a site \(empty site id\)"):
        site_table(df, ["a", "b"], "pa.csv", site_col="site")
    df["site"] = ["s1", "s2", "s3"]
    df.loc[1, "lon"] = np.nan
    with pytest.raises(DatasetError, match=r"pa\.csv:1:lon: a row without a site \(no longitude/latitude\)"):
        site_table(df, ["a", "b"], "pa.csv")
    assert site_table(df, ["a", "b"], "pa.csv", site_col="site").y.tolist() == [[1, 0], [0, 1], [1, 0]]


def test_run_without_groups_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="fit it with --group-col"):
        run_groups({"groups": None})
