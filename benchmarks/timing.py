"""Timing helpers for every peer; they import no torch, since the Keras subprocesses use them."""

from __future__ import annotations

import statistics
import time

CALL_BUDGET = 5.0  # seconds of timed calls per latency cell: slow calls (Keras eager) stop early
MIN_CALLS = 5  # ... but not before this many


def time_calls(fn, calls: int, warmup: int = 3) -> list[float]:
    """Seconds of each of `calls` calls of `fn` after `warmup` untimed ones (fewer calls when
    they run past CALL_BUDGET)."""
    for _ in range(warmup):
        fn()
    seconds = []
    while len(seconds) < calls and (len(seconds) < MIN_CALLS or sum(seconds) < CALL_BUDGET):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def time_interleaved(fns: dict, calls: int, warmup: int = 3) -> dict:
    """Seconds of each call of every function in `fns`, taking turns call by call, so that a
    burst of load elsewhere hits them all alike (fewer rounds past CALL_BUDGET in all)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    seconds = {name: [] for name in fns}
    rounds = 0
    while rounds < calls and (rounds < MIN_CALLS or sum(map(sum, seconds.values())) < CALL_BUDGET):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
        rounds += 1
    return seconds


def median(values) -> float:
    return float(statistics.median(values))
