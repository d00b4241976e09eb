"""Process-wide runtime settings that must be made before torch or FAISS load."""

from __future__ import annotations

import os

# How many times an idle OpenMP thread checks for work before it sleeps (libgomp's
# GOMP_SPINCOUNT; torch and FAISS both use libgomp). 10,000 checks take ~0.1 ms here: enough to
# bridge the microseconds between the operators of one forward pass, far short of libgomp's
# default (300,000) or OMP_WAIT_POLICY=ACTIVE (spins for seconds).
IDLE_SPINS = 10_000


def let_idle_openmp_threads_sleep() -> None:
    """Idle OpenMP threads sleep after a short spin instead of spinning on; explicit settings win.

    Call it before torch or FAISS is imported: their OpenMP runtimes read it once, at load.
    Spinning threads look busy to the scheduler, so nothing else runs in their idle moments:
    in the query service they starved the threads doing work (text encoding 8-10x slower on 2
    busy cores, bench/RESULTS-query.md); in the indexer they kept the decoders (which run at a
    lower priority) from using the model's idle time. Sleeping at once (OMP_WAIT_POLICY=PASSIVE)
    costs a wake-up between every two operators instead: a short query's text encoding took
    ~15% longer that way (bench/query_latency.py --encoding-only).
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", str(IDLE_SPINS))
