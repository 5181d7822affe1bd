"""The paper's tables reproduced on GeoWorld (``geocsp demo``, ``geocsp bench paper``).

See docs/demo.md. ``run_table(DemoSettings(...), table=1, out="geocsp-demo")`` runs the
protocol (methods × label ratios × seeds) and writes ``results.json|csv|md`` and figures.
"""

from geocsp.demo.protocol import TABLES, DemoSettings, Method, load_demo_section, run_table
from geocsp.demo.report import aggregate, format_table, relative_gain, write_results

__all__ = [
    "TABLES",
    "DemoSettings",
    "Method",
    "aggregate",
    "format_table",
    "load_demo_section",
    "relative_gain",
    "run_table",
    "write_results",
]
