"""Work on a photo's pixels in runs, on as many threads as torch may use (OpenCV and numpy release the GIL)."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

__all__ = ["FAST_RUN", "in_runs"]

# Pixels per task of the OpenCV paths: small enough that a task's temporaries stay in a core's cache.
FAST_RUN = 1 << 16


@functools.lru_cache(maxsize=None)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="colorization")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has the pool but not its threads


def in_runs(fn: Callable[[int, int], object], n: int, run: int = FAST_RUN) -> list:
    """[fn(start, stop) for each run of ``run`` items of range(n)], on as many threads as torch may use.

    OpenCV and numpy release the GIL, so a photo's runs go in parallel; following torch's thread count
    keeps the share the caller gave (the app gives each request its own).
    """
    spans = [(start, min(start + run, n)) for start in range(0, n, run)]
    threads = min(torch.get_num_threads(), len(spans))
    if threads <= 1:
        return [fn(start, stop) for start, stop in spans]
    return list(_pool(threads).map(lambda span: fn(*span), spans))
