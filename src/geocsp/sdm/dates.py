"""Parsing dates into day of year (1–366) for seasonal priors.

Accepted per value: an ISO date or timestamp (``2020-06-15``, ``2020-06-15T10:00``), a
month-day (``06-15``), an integer day of year (``1``–``366``), or empty/NaN (missing:
allowed, the time input is then zero). Anything else is refused with the row number.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from geocsp.errors import ConfigError, DatasetError

_MD = re.compile(r"^\s*(\d{1,2})-(\d{1,2})\s*$")
_CUM = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30])  # non-leap year


def month_day_to_doy(month: int, day: int) -> int:
    """Day of year of a month-day in a non-leap year.

    >>> month_day_to_doy(1, 1), month_day_to_doy(6, 15), month_day_to_doy(12, 31)
    (1, 166, 365)
    """
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"not a month-day: {month:02d}-{day:02d}")
    return int(_CUM[month - 1] + day)


def parse_day_of_year(values: pd.Series | list, *, source: str = "date") -> np.ndarray:
    """Parse a column of dates into (N,) float day-of-year, NaN where missing.

    Raises:
        DatasetError: naming the first row that does not parse.

    >>> parse_day_of_year(["2021-02-01", "06-15", 32, None]).tolist()
    [32.0, 166.0, 32.0, nan]
    """
    s = pd.Series(values, dtype="object")
    out = np.full(len(s), np.nan)
    for i, v in enumerate(s.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue
        try:
            out[i] = _parse_one(v)
        except (ValueError, TypeError):
            raise DatasetError(
                f"{source}: row {i}: cannot parse date {v!r}; expected YYYY-MM-DD, MM-DD or a day of year 1-366"
            ) from None
    return out


def parse_date_option(value: str, option: str = "--date") -> float:
    """Parse one date given on the command line into a day of year (1-366).

    Raises:
        ConfigError: naming ``option`` and the value (no row: it is not a table).

    >>> parse_date_option("06-15"), parse_date_option("2021-02-01")
    (166.0, 32.0)
    """
    try:
        return _parse_one(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{option}: cannot parse {value!r}; expected MM-DD, YYYY-MM-DD or a day of year 1-366") from None


def _parse_one(v: object) -> float:
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer()):
        d = int(v)
        if 1 <= d <= 366:
            return float(d)
        raise ValueError(v)
    text = str(v).strip()
    if text.isdigit():
        return _parse_one(int(text))
    m = _MD.match(text)
    if m:
        return float(month_day_to_doy(int(m.group(1)), int(m.group(2))))
    ts = pd.Timestamp(text)
    if pd.isna(ts):
        raise ValueError(v)
    return float(ts.day_of_year)
