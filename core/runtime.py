"""Process-wide runtime settings that must be made before torch or FAISS load."""

from __future__ import annotations

import os


def let_idle_openmp_threads_sleep() -> None:
    """Idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``); an explicit setting wins.

    Call it before torch or FAISS is imported: their OpenMP runtimes read it once, at load.
    Spinning threads look busy to the scheduler, so nothing else runs in their idle moments:
    in the query service they starved the threads doing work (text encoding 8-10x slower on 2
    busy cores, bench/RESULTS-query.md); in the indexer they kept the decoders (which run at a
    lower priority) from using the model's idle time. The model alone is ~6% slower this way,
    `glimpse index` on a CPU ~4.5% faster (README, Performance).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
