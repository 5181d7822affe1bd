"""The 2-rank gloo pool, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._pool import DistPool


@pytest.fixture(scope="session")
def pool() -> Iterator[DistPool]:
    """Two spawned CPU ranks joined in one gloo process group."""
    p = DistPool(world=2)
    yield p
    p.close()
