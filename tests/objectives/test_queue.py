"""LocationQueue: FIFO wrap-around, update only under grad, saved as buffers."""

from __future__ import annotations

import pytest
import torch

from geocsp.errors import ConfigError
from geocsp.objectives import LocationQueue


def _pts(start: int, n: int) -> torch.Tensor:
    v = torch.arange(start, start + n, dtype=torch.float32)
    return torch.stack([v, -v], 1)


def test_returns_old_contents_then_enqueues():
    q = LocationQueue(5)
    assert q(_pts(0, 3)).shape == (0, 2)
    torch.testing.assert_close(q(_pts(3, 1)), _pts(0, 3))
    torch.testing.assert_close(q.contents(), _pts(0, 4))


def test_wraps_around_and_keeps_the_newest():
    q = LocationQueue(5)
    q.enqueue(_pts(0, 3))
    q.enqueue(_pts(3, 3))  # slot 0 overwritten by point 5
    assert int(q.count) == 5 and int(q.ptr) == 1
    torch.testing.assert_close(q.contents(), torch.cat([_pts(5, 1), _pts(1, 4)]))
    q.enqueue(_pts(10, 7))  # more than size: only the last 5 are kept
    assert sorted(q.contents()[:, 0].tolist()) == [12.0, 13.0, 14.0, 15.0, 16.0]


def test_update_only_when_grad_enabled_or_forced():
    q = LocationQueue(4)
    with torch.no_grad():
        q(_pts(0, 2))
    assert int(q.count) == 0
    q(_pts(0, 2), update=False)
    assert int(q.count) == 0
    with torch.no_grad():
        q(_pts(0, 2), update=True)
    assert int(q.count) == 2


def test_state_dict_round_trip_and_validation():
    q = LocationQueue(4)
    q.enqueue(_pts(0, 3))
    r = LocationQueue(4)
    r.load_state_dict(q.state_dict())
    assert set(q.state_dict()) == {"lonlat", "ptr", "count"}
    torch.testing.assert_close(r.contents(), q.contents())
    with pytest.raises(ConfigError, match=r"LocationQueue\.size must be >= 1, got 0"):
        LocationQueue(0)
