"""Timing (warm-up + medians), dense-matmul reference FLOP/s, and peak memory from /proc."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued device work (CUDA); no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], Any]], device: torch.device, *, warmup: int = 2,
                repeats: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each of ``fns``, timed in turn within each of ``repeats`` rounds.

    On a shared machine the load changes from minute to minute; timing a step and its
    reference product side by side, round by round, lets a ratio of the two be taken per
    round, so a load change hits both sides of it alike. ``warmup`` untimed rounds first.
    Functions run in the dict's order (a later one may use an earlier one's result).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """``median``, ``min``, ``max`` of ``times`` and ``spread`` = max / min."""
    lo, hi = min(times), max(times)
    return {"median": statistics.median(times), "min": lo, "max": hi, "spread": hi / max(lo, 1e-12)}


def matmul_call(m: int, k: int, n: int, device: torch.device,
                precision: str = "fp32") -> tuple[Callable[[], Any], float]:
    """A plain dense (m, k) @ (k, n) product into a preallocated output, and its FLOPs per call.

    ``bf16`` multiplies bfloat16 operands (what autocast runs). The output is written in
    place (``out=``), so the reference times the product itself, not the allocation and
    first touch of a fresh output (~15 % of a (2048, 256) @ (256, 8142) product on the
    2-core CPU). On CUDA one call runs enough products (~2 GFLOP) to dwarf launch latency.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(m, k, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(k, n, generator=g).to(device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    calls = max(1, int(2e9 / (2.0 * m * k * n))) if device.type == "cuda" else 1

    def run() -> None:
        for _ in range(calls):
            torch.mm(a, b, out=out)

    return run, 2.0 * m * k * n * calls


def _proc_status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``VmHWM``; 0 where /proc is missing)."""
    try:
        return _proc_status_kib("VmHWM") * 1024
    except OSError:
        return 0


def rss_bytes() -> int:
    """Current resident set size of this process (``VmRSS``)."""
    try:
        return _proc_status_kib("VmRSS") * 1024
    except OSError:
        return 0


def rss_split_bytes() -> dict[str, int]:
    """Current ``RssAnon`` (private memory) and ``RssFile`` (mapped file pages) in bytes.

    A memory-mapped feature matrix shows up in ``RssFile`` once its pages are read; it is
    page cache the kernel may reclaim, not a second copy of the matrix.
    """
    try:
        return {"anon": _proc_status_kib("RssAnon") * 1024, "file": _proc_status_kib("RssFile") * 1024}
    except OSError:
        return {"anon": 0, "file": 0}


class PeakSampler:
    """Samples ``RssAnon`` / ``RssFile`` every ``interval`` s in a thread; keeps the maxima.

    ``VmHWM`` has no anonymous-only counterpart, so the peak of private memory is sampled
    (a peak shorter than ``interval`` can be missed).
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = {"anon": 0, "file": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = rss_split_bytes()
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cuda_peak_bytes(device: torch.device) -> int | None:
    """Peak CUDA memory allocated by torch on ``device`` (None on CPU)."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))


def environment(device: torch.device) -> dict[str, Any]:
    """Machine facts for the JSON: torch version, threads, device name, load average."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
            "device_name": name, "loadavg": load}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"
