"""Worker processes for CPU-bound work: one place decides whether a pool is worth starting.

Three stages spread work over cores (counting BPE pieces, encoding large texts, preparing token
files); Python threads cannot (the GIL), so they use processes. Starting a process costs tens
of milliseconds (and, when spawned, a fresh interpreter and imports), so a pool pays off only
with more than one worker, more than one task, and enough work: each caller says how much is
enough for its kind of work.

    >>> worker_pool(1, tasks=10) is None      # one worker: do the work in this process
    True
    >>> worker_pool(4, tasks=10, work=100, min_work=1000) is None   # too little work to share
    True

Design choices:
- `start="fork"` inherits the parent's memory (a large tokenizer is not pickled to each worker);
  it is used on Linux only, where it is the default and dependable. `start="spawn"` starts fresh
  interpreters, safe when the parent runs threads (torch's), and is what other platforms get.
- The caller falls back to a plain loop when `worker_pool` returns None, so the results are the
  same either way; only the speed differs.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import sys
from collections.abc import Callable

from byollm.config import check_number

WORKERS_PER_CPU = 4  # more processes than this only cost memory (each loads the tokenizer)


def check_workers(key: str, workers: int | None) -> None:
    """A worker count a user typed (None: one per core): refused beyond WORKERS_PER_CPU per
    CPU, before a pool of thousands of processes could be started."""
    if workers is not None:
        most = WORKERS_PER_CPU * (os.cpu_count() or 1)
        check_number(key, workers, 1, most, integer=True, hint=f"{WORKERS_PER_CPU} per CPU")


def worker_pool(
    workers: int | None,
    *,
    tasks: int | None = None,
    work: int = 0,
    min_work: int = 0,
    start: str = "fork",
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> multiprocessing.pool.Pool | None:
    """A pool of `workers` processes (None: one per core; at most one per task), or None when
    one process would do: a single worker or task, or less than `min_work` units of `work`."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    if tasks is not None:
        workers = min(workers, tasks)
    if workers <= 1 or work < min_work:
        return None
    method = "fork" if start == "fork" and sys.platform == "linux" else "spawn"
    return multiprocessing.get_context(method).Pool(workers, initializer, initargs)
