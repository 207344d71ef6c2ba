"""The timing helper of the benchmark scripts (run them as ``python benchmarks/bench_*.py``)."""

import time
import tracemalloc

import numpy as np


def measure(fn, repeats=3):
    """(result, best wall time in s, peak traced memory in MB) of `fn()` over `repeats` runs."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, best, peak
