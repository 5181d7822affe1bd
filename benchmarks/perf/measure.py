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


def time_calls(fn: Callable[[], Any], device: torch.device, *, warmup: int = 2, repeats: int = 5,
               calls: int = 1) -> dict[str, float]:
    """Seconds per call of ``fn``: ``warmup`` untimed calls, then ``repeats`` timings of
    ``calls`` calls each.

    Returns:
        ``median``, ``min``, ``max`` seconds per call and ``spread`` = max / min.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        times.append((time.perf_counter() - t0) / calls)
    lo, hi = min(times), max(times)
    return {"median": statistics.median(times), "min": lo, "max": hi, "spread": hi / max(lo, 1e-12)}


def matmul_rate(m: int, k: int, n: int, device: torch.device, precision: str = "fp32",
                repeats: int = 7) -> float:
    """FLOP/s of a plain dense (m, k) @ (k, n) product in this process and precision.

    ``bf16`` multiplies bfloat16 operands (what autocast runs); the best of ``repeats``
    medians-of-3 is returned, so a momentary load spike does not lower the reference.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(m, k, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(k, n, generator=g).to(device=device, dtype=dtype)
    calls = max(1, int(2e9 / (2.0 * m * k * n))) if device.type == "cuda" else 1
    t = time_calls(lambda: a @ b, device, warmup=2, repeats=repeats, calls=calls)
    return 2.0 * m * k * n / t["min"]


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
