"""The paper's tables reproduced on GeoWorld (``geocsp demo``, ``geocsp bench paper``).

See docs/demo.md and docs/protocol.md (any dataset: ``DemoSettings(data=...)``). ``run_table(DemoSettings(...), table=1, out="geocsp-demo")`` runs the
protocol (methods × label ratios × seeds) and writes ``results.json|csv|md`` and figures.
:mod:`~geocsp.demo.tables` defines the tables, :mod:`~geocsp.demo.report` aggregates and
writes them, :mod:`~geocsp.demo.figures` draws them and :mod:`~geocsp.demo.run` ties the
three to :mod:`geocsp.experiments`.
"""

from geocsp.demo.report import (
    aggregate,
    collect_records,
    format_table,
    relative_gain,
    write_results,
)
from geocsp.demo.run import run_table
from geocsp.demo.tables import (
    BASELINE,
    MAIN,
    METHODS,
    TABLE_GAIN,
    TABLE_TITLES,
    TABLES,
    DemoSettings,
    Method,
    load_demo_section,
    methods_by_name,
    settings_for,
)

__all__ = [
    "BASELINE",
    "MAIN",
    "METHODS",
    "TABLES",
    "TABLE_GAIN",
    "TABLE_TITLES",
    "DemoSettings",
    "Method",
    "aggregate",
    "collect_records",
    "format_table",
    "load_demo_section",
    "methods_by_name",
    "relative_gain",
    "run_table",
    "settings_for",
    "write_results",
]
