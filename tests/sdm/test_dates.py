"""Day-of-year parsing."""

from __future__ import annotations

import numpy as np
import pytest

from geocsp.errors import ConfigError, DatasetError
from geocsp.sdm.dates import month_day_to_doy, parse_date_option, parse_day_of_year


def test_formats_and_missing() -> None:
    out = parse_day_of_year(["2020-03-01", "2021-03-01", "12-31", "366", 1, "", None, float("nan")])
    assert out[:5].tolist() == [61.0, 60.0, 365.0, 366.0, 1.0]
    assert np.isnan(out[5:]).all()


def test_month_day_matches_numpy_calendar() -> None:
    for m, d in [(1, 1), (2, 28), (3, 1), (7, 4), (12, 31)]:
        ref = (np.datetime64(f"2019-{m:02d}-{d:02d}") - np.datetime64("2019-01-01")).astype(int) + 1
        assert month_day_to_doy(m, d) == ref


@pytest.mark.parametrize("bad", ["not a date", "13-45", "400", "0"])
def test_unparsable_names_row(bad: str) -> None:
    with pytest.raises(DatasetError, match=r"when: row 1: cannot parse date"):
        parse_day_of_year(["06-15", bad], source="when")


@pytest.mark.parametrize("bad", ["not a date", "13-45", "400", "0", ""])
def test_an_option_value_names_the_option_not_a_row(bad: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--date: cannot parse '{bad}'; expected MM-DD") as err:
        parse_date_option(bad)
    assert "row" not in str(err.value)
    assert parse_date_option("12-31", "date") == 365.0
