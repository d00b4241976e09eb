"""Micro-batching: work submitted by concurrent request threads runs together, in one model or FAISS call.

A CPU encodes eight short texts in one forward pass for little more than the cost of one, and FAISS
answers eight queries on a flat index with one matrix product for much less than eight scans. So
requests that arrive together are run as one batch.

There is no batching thread: the first waiting caller runs the batch in its own thread (no hand-off,
which on busy cores can cost a scheduler time slice), taking with it everything that queued up
while the previous batch ran. A caller that is alone runs at once and never waits; only when other
callers are in the batcher does the one about to run keep the batch open for up to ``max_wait``
seconds for late arrivals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from glimpse.core.encoder import Encoder
from glimpse.core.index import VectorIndex

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_WAIT = 0.002  # seconds a batch stays open for late arrivals (only under concurrency)


class BatcherClosed(RuntimeError):
    """The batcher was shut down (the server is stopping)."""


class _Slot:
    """One caller's item and, once its batch ran, its result or error."""

    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class MicroBatcher(Generic[T, R]):
    """Runs ``fn(items) -> results`` (same length, same order) on items submitted from many threads.

    Each caller gets its own result, or the exception ``fn`` raised for its batch. One batch runs
    at a time; batches hold at most ``max_batch`` items.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait: float = DEFAULT_MAX_WAIT,
        name: str = "micro-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}")
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.name = name
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []  # submitted, not yet taken into a batch
        self._running = False  # a batch is being computed
        self._inside = 0  # callers inside submit()
        self._closed = False
        self.batches = 0  # batches run so far (tests and the benchmark read these)
        self.items = 0

    def submit(self, item: T) -> R:
        """Run ``item`` in a batch and return its result (re-raising its batch's exception)."""
        slot = _Slot(item)
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"{self.name} is closed")
            self._inside += 1
            self._pending.append(slot)
            self._cond.notify_all()  # a leader holding the batch open may now be full
        try:
            batch = self._wait_for_turn(slot)
            if batch is not None:
                self._run(batch)
            return slot.outcome()
        finally:
            with self._cond:
                self._inside -= 1

    def close(self) -> None:
        """Refuse new items (batches under way finish)."""
        with self._cond:
            self._closed = True

    def _wait_for_turn(self, slot: _Slot) -> list[_Slot] | None:
        """Block until another caller ran ``slot`` (None) or it is this caller's turn to run a batch."""
        with self._cond:
            while not slot.done and (self._running or self._pending[0] is not slot):
                self._cond.wait()
            if slot.done:
                return None
            self._running = True
            if self.max_wait > 0 and self._inside > 1:
                deadline = time.monotonic() + self.max_wait
                while len(self._pending) < self.max_batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            return batch

    def _run(self, batch: list[_Slot]) -> None:
        try:
            results = self._fn([s.item for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(batch)} items in, {len(results)} results out")
            for s, r in zip(batch, results, strict=True):
                s.result = r
            self.batches += 1
            self.items += len(batch)
        except BaseException as exc:  # noqa: BLE001 - every caller in the batch gets the error
            for s in batch:
                s.error = exc
        finally:
            with self._cond:
                for s in batch:
                    s.done = True
                self._running = False
                self._cond.notify_all()


class TextBatcher:
    """Query texts -> unit vectors; texts that arrive together are encoded in one forward pass.

    Cached texts are answered at once without joining a batch (no wait for what costs nothing).
    """

    def __init__(self, encoder: Encoder, **kwargs: Any) -> None:
        self.encoder = encoder
        self._batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
            self._encode, name="text-batcher", **kwargs
        )

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        return list(self.encoder.encode_texts(texts))

    def encode(self, text: str) -> np.ndarray:
        cached = self.encoder.cached_text(text)
        if cached is not None:
            return cached
        return self._batcher.submit(text)

    @property
    def stats(self) -> MicroBatcher[Any, Any]:
        return self._batcher

    def close(self) -> None:
        self._batcher.close()


@dataclass(frozen=True)
class IndexQuery:
    """One unfiltered top-``k`` search of ``vector`` in ``index`` (a snapshot's index)."""

    index: VectorIndex
    vector: np.ndarray
    k: int
    spare: bool = False  # also the re-ranked candidates past k (VectorIndex.search)


def use_blas_for_query_batches(max_batch: int = DEFAULT_MAX_BATCH) -> None:
    """Let FAISS answer a batch of 2+ queries on a flat index with one BLAS matrix product.

    FAISS's own threshold for that is high (128,000 queries in faiss-cpu 1.15), so below it each
    query scans the whole index on its own: eight queries cost about eight scans. As a matrix
    product, eight cost under two scans (bench/RESULTS-query.md).
    A single query keeps the SIMD scan. Process-wide FAISS settings: the query service calls this.
    The database block size stays FAISS's default (1,024): larger blocks did not speed up a batch
    of 8 and made a single query's scan 25% slower (170 -> 210 ms at a million vectors).
    """
    import faiss

    faiss.cvar.distance_compute_blas_threshold = 2
    faiss.cvar.distance_compute_blas_query_bs = max_batch


class SearchBatcher:
    """Unfiltered FAISS searches that arrive together run as one multi-query search.

    A flat index is then scanned once per call for the whole batch (see
    :func:`use_blas_for_query_batches`), so eight concurrent queries cost little more than one.
    Queries on different index snapshots (a swap happened between them) are searched separately;
    each gets exactly its own ``k``.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._batcher: MicroBatcher[IndexQuery, tuple[np.ndarray, np.ndarray]] = MicroBatcher(
            search_together, name="search-batcher", **kwargs
        )

    def search(
        self,
        index: VectorIndex,
        vectors: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
        spare: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The engine's ``IndexSearcher``: one query (1, D) joins a batch; a filtered search or
        one leaving ids out (its own id selector), or several queries at once, run alone."""
        if allowed is not None or excluded is not None or len(vectors) != 1:
            return index.search(vectors, k, allowed, excluded, spare)
        return self._batcher.submit(IndexQuery(index, vectors[0], k, spare))

    @property
    def stats(self) -> MicroBatcher[Any, Any]:
        return self._batcher

    def close(self) -> None:
        self._batcher.close()


def search_together(queries: list[IndexQuery]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Search each group of queries on the same index in one call; results shaped (1, k) each."""
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(queries)
    groups: dict[int, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(id(q.index), []).append(i)
    for members in groups.values():
        index = queries[members[0]].index
        k = max(queries[i].k for i in members)
        spare = any(queries[i].spare for i in members)
        scores, ids = index.search(np.stack([queries[i].vector for i in members]), k, spare=spare)
        for row, i in enumerate(members):
            kk = scores.shape[1] if queries[i].spare else min(queries[i].k, scores.shape[1])
            results[i] = (scores[row : row + 1, :kk], ids[row : row + 1, :kk])
    return results  # type: ignore[return-value]
