"""A pool of spawned processes forming one gloo process group, reused by many tests.

Starting processes that import torch costs seconds, so the pool is started once per test
session (``conftest.py``) and each test sends it a function to run on every rank:
``pool.run(fn, *args)`` calls ``fn(info, *args)`` on each rank (``info`` is the rank's
:class:`geocsp.distributed.DistInfo`) and returns the results ordered by rank.
"""

from __future__ import annotations

import os
import queue
import socket
import traceback
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp


def free_port() -> int:
    """An unused localhost TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(rank: int, world: int, port: int, tasks: Any, results: Any) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    import torch

    torch.set_num_threads(1)
    from geocsp.distributed import cleanup, init_distributed

    info = init_distributed("cpu", timeout_s=60)
    results.put((rank, True, "ready"))
    try:
        while (item := tasks.get()) is not None:
            fn, args = item
            try:
                results.put((rank, True, fn(info, *args)))
            except Exception:  # report, keep serving
                results.put((rank, False, traceback.format_exc()))
    finally:
        cleanup()


class DistPool:
    """``world`` spawned ranks in one gloo group (see module docstring).

    Args:
        world: number of ranks.
        timeout_s: how long :meth:`run` waits for each rank's result.
    """

    def __init__(self, world: int = 2, timeout_s: float = 90.0) -> None:
        ctx = mp.get_context("spawn")
        self.world, self.timeout_s = world, timeout_s
        self.tasks = [ctx.Queue() for _ in range(world)]
        self.results = ctx.Queue()
        port = free_port()
        self.procs = [
            ctx.Process(
                target=_serve, args=(r, world, port, self.tasks[r], self.results), daemon=True
            )
            for r in range(world)
        ]
        for p in self.procs:
            p.start()
        self._collect()

    def _collect(self) -> list[Any]:
        out: list[Any] = [None] * self.world
        errors = []
        for _ in range(self.world):
            try:
                rank, ok, value = self.results.get(timeout=self.timeout_s)
            except queue.Empty:
                self.close()
                raise TimeoutError(
                    f"distributed pool: no result within {self.timeout_s} s"
                ) from None
            out[rank] = value
            if not ok:
                errors.append(f"rank {rank}:\n{value}")
        if errors:
            raise RuntimeError("\n".join(errors))
        return out

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """``[fn(info_0, *args), fn(info_1, *args), ...]`` run concurrently on the ranks."""
        for q in self.tasks:
            q.put((fn, args))
        return self._collect()

    def close(self) -> None:
        """Stop the ranks (terminating those that do not exit within 10 s)."""
        for q in self.tasks:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()
