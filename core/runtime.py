"""Process-wide runtime settings that must be made before numpy, torch or FAISS load."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# How many times an idle OpenMP thread checks for work before it sleeps (libgomp's
# GOMP_SPINCOUNT; torch and FAISS both use libgomp). 10,000 checks take ~0.1 ms here: enough to
# bridge the microseconds between the operators of one forward pass, far short of libgomp's
# default (300,000) or OMP_WAIT_POLICY=ACTIVE (spins for seconds).
IDLE_SPINS = 10_000
BLAS_IDLE_TIMEOUT = 4  # OpenBLAS: idle threads spin 2^this cycles before they sleep (default 28)


def let_idle_threads_sleep() -> None:
    """Idle OpenMP and OpenBLAS threads sleep after a short spin instead of spinning on; explicit
    settings win.

    Call it before numpy, torch or FAISS is imported: their thread pools read it once, at load.
    Spinning threads look busy to the scheduler, so nothing else runs in their idle moments:
    in the query service they starved the threads doing work (text encoding 8-10x slower on 2
    busy cores, bench/RESULTS-query.md); in the indexer they kept the decoders (which run at a
    lower priority) from using the model's idle time. Sleeping at once (OMP_WAIT_POLICY=PASSIVE)
    costs a wake-up between every two operators instead: a short query's text encoding took
    ~15% longer that way (bench/query_latency.py --encoding-only).

    numpy's OpenBLAS has its own pool, which spins for 2^28 cycles (~0.1 s) after each matrix
    product: the search engine's small products (the relevance calibration, re-ranking) left it
    spinning through the next query's text encoding, and a search took 56 ms in process where
    its encoding and index search took 20 (a 1,000-vector library; over HTTP at 5M, 108 ms
    against 27). At ``OPENBLAS_THREAD_TIMEOUT`` 4 (2^4 cycles, OpenBLAS's minimum) it took 18 ms
    (bench/scale.py --http-only: HTTP within 1.2-1.4x of encoding + search).
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", str(IDLE_SPINS))
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(BLAS_IDLE_TIMEOUT))


def keep_blas_in_calling_thread() -> None:
    """numpy's (and FAISS's) OpenBLAS runs each matrix product in the thread that asks for it, in
    a process that answers queries. Loads numpy and FAISS (threadpoolctl finds the libraries
    loaded, and sets their thread count through their own API), so call it after
    :func:`let_idle_threads_sleep`.

    A query's products are small: the relevance calibration (2,048 x 512), re-ranking (~400 x
    512) and a page's moment windows (~1,200 x 512), each 0.05-0.15 ms on one core. OpenBLAS
    splits such a product across its pool, whose threads sleep between queries (see
    :func:`let_idle_threads_sleep`): each product then waits for a sleeping thread to wake and
    be scheduled, and on a busy machine that wait is where the time goes (a window product:
    p50 90 us, mean 1.6 ms, p90 4.9 ms while another process used the cores). Concurrent
    requests would also contend for that one pool; on one thread each uses its own core. FAISS's
    index searches are unaffected: at one query it scans with its own kernels, not BLAS.
    Not for the indexer, whose batched products (recall tuning) do use both cores.
    """
    import faiss  # noqa: F401 - loaded, so that its OpenBLAS is found too
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@contextmanager
def torch_in_calling_thread() -> Iterator[bool]:
    """Inside the block, torch runs its operators in the calling thread only; yields whether it
    could (False: torch is not loaded, or no OpenMP runtime was found, and nothing changed).

    For a conversion or product of a few hundred rows, which torch would split over its OpenMP
    pool: the pool's threads sleep between queries (:func:`let_idle_threads_sleep`), and waking
    them cost more than the work (1,200 x 512 float16 rows widened: p50 0.72 ms on the pool,
    0.25 ms in the calling thread, with the pool idle 3 ms between calls; bench of 2026-12-08).
    The limit is the calling thread's own (OpenMP keeps the thread count per thread: other
    threads, such as another request's text encoding, keep the pool), and it is undone on exit.
    """
    torch = sys.modules.get("torch")
    pools = _openmp_runtimes() if torch is not None else []
    if torch is None or not pools:
        yield False
        return
    # torch sets a thread's OpenMP thread count on the first operator the thread runs: it must
    # have done so before the limit, or it would undo the limit.
    torch.get_num_threads()
    before = [pool.get_num_threads() for pool in pools]
    for pool in pools:
        pool.set_num_threads(1)
    try:
        yield True
    finally:
        for pool, n in zip(pools, before, strict=True):
            pool.set_num_threads(n)


@functools.cache
def _openmp_runtimes() -> list[Any]:
    """threadpoolctl's controllers of the OpenMP runtimes loaded (torch's, FAISS's), found once
    (~1 ms); each sets the calling thread's count through the runtime's own API."""
    from threadpoolctl import ThreadpoolController

    return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "openmp"]
