"""Micro-batching: concurrent work runs together, each caller gets exactly its own answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from api_fixtures import catalogue, client, module_database_url, result_ids, served  # noqa: F401
from glimpse.core.encoder import Encoder
from glimpse.core.index import VectorIndex
from glimpse.search.batching import (
    BatcherClosed,
    IndexQuery,
    MicroBatcher,
    SearchBatcher,
    TextBatcher,
    search_together,
)


def _together(n: int, fn):
    """Call ``fn(i)`` from ``n`` threads released at the same instant; results in order."""
    barrier = threading.Barrier(n)

    def call(i: int):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, range(n)))


def test_concurrent_submissions_run_in_few_batches_with_their_own_results():
    sizes: list[int] = []

    def square_all(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        time.sleep(0.02)  # like a model call: others arrive meanwhile and form the next batch
        return [x * x for x in xs]

    batcher = MicroBatcher(square_all, max_batch=32, max_wait=0.05)
    try:
        assert _together(16, batcher.submit) == [i * i for i in range(16)]
    finally:
        batcher.close()
    assert sum(sizes) == 16 and len(sizes) < 16 and max(sizes) > 1
    assert (batcher.batches, batcher.items) == (len(sizes), 16)


def test_batches_never_exceed_max_batch():
    sizes: list[int] = []

    def ident(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        time.sleep(0.01)
        return xs

    batcher = MicroBatcher(ident, max_batch=3, max_wait=0.05)
    try:
        assert _together(10, batcher.submit) == list(range(10))
    finally:
        batcher.close()
    assert max(sizes) <= 3 and sum(sizes) == 10


def test_a_lone_caller_runs_at_once_without_waiting_for_company():
    batcher = MicroBatcher(lambda xs: xs, max_wait=5.0)  # a wait this long would show
    started = time.perf_counter()
    assert [batcher.submit(i) for i in range(3)] == [0, 1, 2]
    assert time.perf_counter() - started < 1.0 and batcher.batches == 3


def test_the_runner_waits_for_late_arrivals_only_while_others_are_inside():
    sizes: list[int] = []
    first_started = threading.Event()

    def record(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        first_started.set()
        time.sleep(0.05)
        return xs

    batcher = MicroBatcher(record, max_wait=0.3)
    with ThreadPoolExecutor(4) as pool:
        a = pool.submit(batcher.submit, 0)  # alone: runs at once
        first_started.wait(5)
        b, c = pool.submit(batcher.submit, 1), pool.submit(batcher.submit, 2)  # queue behind it
        time.sleep(0.15)  # a is done by now; b runs next and, with c inside too, holds the batch open
        d = pool.submit(batcher.submit, 3)  # ...so this late one still joins it
        assert [f.result() for f in (a, b, c, d)] == [0, 1, 2, 3]
    assert sizes == [1, 3]


def test_an_error_in_the_batch_reaches_every_caller_and_the_batcher_goes_on():
    def fail_on_seven(xs: list[int]) -> list[int]:
        if 7 in xs:
            raise ValueError("seven")
        return xs

    batcher = MicroBatcher(fail_on_seven, max_wait=0.05)
    try:
        with pytest.raises(ValueError, match="seven"):
            batcher.submit(7)
        with pytest.raises(ValueError, match="seven"):
            _together(4, lambda i: batcher.submit(i + 5))  # whoever shares a batch with 7 sees it
        assert batcher.submit(3) == 3
    finally:
        batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(1)


def test_text_batcher_encodes_like_the_encoder_and_skips_cached_texts(tiny_encoder: Encoder):
    encoder = Encoder("glimpse-tiny", None, device="cpu", text_cache_size=64).load()  # its own, empty cache
    texts = [
        f"query number {i} about a {c} thing" for i, c in enumerate(["red", "blue", "green", "black"] * 2)
    ]
    batcher = TextBatcher(encoder, max_wait=0.05)
    try:
        got = _together(len(texts), lambda i: batcher.encode(texts[i]))
        assert np.allclose(np.stack(got), tiny_encoder.encode_texts(texts), atol=1e-5)
        assert batcher.stats.items == len(texts) and batcher.stats.batches < len(texts)
        batches = batcher.stats.batches
        again = batcher.encode(texts[3])  # cached: answered without joining a batch
        assert batcher.stats.batches == batches and np.array_equal(again, got[3])
    finally:
        batcher.close()


def test_batched_index_searches_equal_searching_each_query_alone():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first = VectorIndex.build(np.arange(1000, 1500), vectors, 16)
    second = VectorIndex.build(np.arange(500), vectors[::-1].copy(), 16)
    queries = [
        IndexQuery(first if i % 3 else second, vectors[i * 7], k)
        for i, k in enumerate([1, 5, 40, 3, 17, 500, 2])
    ]
    for q, (scores, ids) in zip(queries, search_together(queries), strict=True):
        exp_scores, exp_ids = q.index.search(q.vector[None, :], q.k)
        assert (
            scores.shape == (1, q.k)
            and np.array_equal(ids, exp_ids)
            and np.allclose(scores, exp_scores, atol=1e-6)
        )


def test_search_batcher_serves_concurrent_queries():
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 8)).astype(np.float32)
    index = VectorIndex.build(np.arange(300), vectors, 8)
    batcher = SearchBatcher(max_wait=0.05)
    try:
        got = _together(8, lambda i: batcher.search(index, vectors[i][None, :], 5 + i))
    finally:
        batcher.close()
    for i, (_scores, ids) in enumerate(got):
        assert np.array_equal(ids, index.search(vectors[i][None, :], 5 + i)[1])
    assert batcher.stats.batches < 8


def test_concurrent_api_queries_each_get_their_own_results(client):
    """Through the real app: 8 clients at once get what each would get alone."""
    queries = [f"{c} item for concurrency {i}" for i, c in enumerate(["red", "green", "blue", "white"] * 2)]
    alone = [result_ids(client.get("/v1/search", params={"q": q, "k": 5})) for q in queries]
    # the same texts again, now cached, plus concurrency through batched FAISS searches
    together = _together(8, lambda i: result_ids(client.get("/v1/search", params={"q": queries[i], "k": 5})))
    assert together == alone
    fresh = [f"{q} (fresh)" for q in queries]
    alone_fresh = _together(8, lambda i: result_ids(client.get("/v1/search", params={"q": fresh[i], "k": 5})))
    assert alone_fresh == [result_ids(client.get("/v1/search", params={"q": q, "k": 5})) for q in fresh]
