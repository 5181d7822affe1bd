"""Command-line interface (``geocsp``). The library never imports this package."""
