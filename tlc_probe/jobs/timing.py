"""Measuring a call: wall time (synchronised on CUDA) and peak extra memory.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on Linux CPUs the rise of the
process's peak resident set (VmHWM, reset through /proc/self/clear_refs) over its
resident set before the call, after ``malloc_trim`` has returned freed heap pages — an
approximate figure; NaN where neither is available.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def _rss_kb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the figure is only less tight
        pass


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak extra memory (MB) of calling ``fn``: CUDA peak allocation on a GPU, on a
    Linux CPU the rise of the peak resident set over the resident set before the call
    (approximate); NaN if not measurable."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    try:
        _malloc_trim()  # give freed heap pages back, so the scheme's own peak must fault in
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident set
        base = _rss_kb("VmRSS")
        fn()
        return (_rss_kb("VmHWM") - base) / 1024
    except OSError:
        return float("nan")


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    """(``fn()``, its wall time in s), synchronising ``device`` around it on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t
