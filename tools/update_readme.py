"""Regenerate the generated parts of README.md from the registries.

    python tools/update_readme.py          # rewrite README.md in place
    python tools/update_readme.py --check  # exit 1 if README.md is out of date

The encoder table between the ``<!-- encoders:start -->`` / ``<!-- encoders:end -->``
markers comes from ``geocsp.encoders.encoders_markdown_table()``: the registry is the one
source of truth for the CLI listing, the README and the contract tests.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- encoders:start -->", "<!-- encoders:end -->"


def render(text: str) -> str:
    from geocsp.encoders import encoders_markdown_table

    block = f"{START}\n{encoders_markdown_table().rstrip()}\n{END}"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{README}: markers {START} ... {END} not found")
    return pattern.sub(lambda _: block, text)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md encoder table is out of date: run python tools/update_readme.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
