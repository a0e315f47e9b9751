"""bench/best_of.py — what the Python benchmarks share: the best (smallest) wall time of reps calls."""
import time


def best(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
