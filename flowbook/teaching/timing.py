r"""Measure how long a computation takes, and how that time scales with the problem size.

If a cost grows like :math:`t(D) \approx c\,D^k`, then :math:`\log t = \log c + k \log D`: on log-log
axes the points lie on a line of slope :math:`k`. ``loglog_slope`` reads that exponent off by least
squares, so "slogdet is :math:`O(D^3)`" becomes a measured number.
"""
from __future__ import annotations

import time

import numpy as np
import torch

__all__ = ["time_call", "loglog_slope"]


def time_call(fn, *, repeat: int = 5, min_time: float = 2e-3, threads: int | None = 1) -> float:
    """Seconds per call of ``fn()``: the best of ``repeat`` batches, each batch lasting >= ``min_time``.

    Fast calls are looped (so timer resolution does not matter) and the *minimum* over batches is
    kept (the least disturbed by other processes). ``threads`` fixes PyTorch's intra-op thread
    count during the measurement (1 by default, so the exponent is not blurred by parallelism);
    ``None`` leaves it alone.

    Example:
        >>> import torch
        >>> from flowbook.teaching.timing import time_call
        >>> a = torch.randn(64, 64)
        >>> t = time_call(lambda: torch.linalg.slogdet(a), repeat=3)
        >>> 0 < t < 1
        True
    """
    if repeat < 1 or min_time <= 0:
        raise ValueError(f"repeat must be >= 1 and min_time > 0, got repeat={repeat}, min_time={min_time}")
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        fn()  # warm-up: first-call allocations and dispatch
        number = 1
        while True:  # calibrate: grow the loop until one batch takes min_time
            start = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
            number *= 2 if elapsed == 0 else max(2, int(1.2 * min_time / elapsed))
        best = elapsed / number
        for _ in range(repeat - 1):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - start) / number)
        return best
    finally:
        torch.set_num_threads(old)


def loglog_slope(sizes, times) -> float:
    """Least-squares slope of ``log(times)`` against ``log(sizes)``: the measured exponent ``k``.

    Example:
        >>> from flowbook.teaching.timing import loglog_slope
        >>> round(loglog_slope([10, 100, 1000], [2e-3, 2.0, 2e3]), 6)
        3.0
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # non-positive values are reported below
        x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float))
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"sizes and times must be two sequences of the same length >= 2, got {x.size} and {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("sizes and times must be positive and finite")
    return float(np.polyfit(x, y, 1)[0])
