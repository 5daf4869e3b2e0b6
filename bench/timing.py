"""What the benchmark scripts share: the timing helper and the nn-operator conv shapes."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Optional

# (N, C, H, W) input, K output channels, R x R kernel, padding: the nn-operator shapes,
# timed on the CPU by bench/nn.py and on the GPU by bench/cuda_bench.py.
CONV_SHAPES = [((64, 1, 28, 28), 6, 5, 0), ((64, 6, 12, 12), 16, 5, 0), ((128, 3, 32, 32), 32, 3, 1),
               ((128, 32, 16, 16), 64, 3, 1), ((32, 64, 56, 56), 64, 3, 1)]


def median_time(fn: Callable[[], object], repeat: int, min_time: float = 0.05, max_calls: int = 1 << 20,
                sync: Optional[Callable[[], object]] = None) -> float:
    """Median seconds per call of fn over `repeat` runs, each of enough calls to last min_time.

    `sync` (e.g. a GPU synchronisation) is called before and after every timed run, so
    asynchronous work is counted where it is queued; a run of over 2 s cuts `repeat` to 2."""
    sync = sync or (lambda: None)
    fn()  # warm-up
    sync()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= max_calls:
            break
        n *= 2
    if dt > 2.0:  # slow: fewer runs
        repeat = min(repeat, 2)
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)
