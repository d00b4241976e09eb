"""Index chosen by size, approximate search re-ranked exactly, and work that grows with the change."""

from __future__ import annotations

import dataclasses

import faiss
import numpy as np
import pytest

from conftest import tiny_settings
from glimpse.core import index as index_module
from glimpse.core.index import (
    IndexSpecError,
    VectorIndex,
    choose_factory,
    exact_top_k,
    held_out_queries,
    recall_at,
    rerank_depth,
    without_self,
)
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.indexer.bulk import import_vectors

TINY = ModelRef("glimpse-tiny", None)
DIM = 128  # glimpse-tiny's


def clustered(n: int, seed: int = 0, dim: int = DIM, clusters: int = 40) -> np.ndarray:
    """Unit vectors around a few centres: structure like real embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + rng.normal(scale=0.6, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def make_library(tmp_path, database_url):
    made: list[Library] = []

    def make(**overrides) -> Library:
        lib = Library(tiny_settings(tmp_path / "lib", database_url, **overrides))
        made.append(lib)
        return lib

    yield make
    for lib in made:
        lib.close()


def _import(lib: Library, start: int, vectors: np.ndarray) -> None:
    import_vectors(lib, TINY, [f"/x/{i}.jpg" for i in range(start, start + len(vectors))], vectors)


def test_the_index_type_follows_the_size_and_the_setting():
    assert choose_factory(1000, 512) == "Flat"
    assert choose_factory(index_module.AUTO_FLAT_MAX + 1, 512).startswith("IVF")
    # autofaiss's rule: the power of two nearest 4*sqrt(N) lists; D/2 4-bit sub-quantisers
    assert choose_factory(1_000_000, 512) == "IVF4096,PQ256x4fs"
    assert choose_factory(5_000_000, 512) == "IVF8192,PQ256x4fs"
    assert choose_factory(1_000_000, 512, "flat") == "Flat"
    assert choose_factory(10, 512, "IVF1,SQ8") == "IVF1,SQ8"
    with pytest.raises(IndexSpecError, match="cannot build index 'IVF,nonsense'"):
        choose_factory(10, 512, "IVF,nonsense")


def test_the_tuned_depth_covers_the_first_ten_hits_and_deep_hits_get_a_fixed_share():
    # the tuning measures recall@10 at k_factor candidates a hit; hits 11.. (a hybrid search's 50,
    # a page of moments) each add DEEP_FACTOR, not k_factor: 3,800 rows for k=50 at 320, not 16,000
    assert rerank_depth(1, 320) == 320
    assert rerank_depth(10, 320) == 3200
    assert rerank_depth(50, 320) == 3200 + 40 * index_module.DEEP_FACTOR
    assert rerank_depth(50, index_module.DEEP_FACTOR) == 50 * index_module.DEEP_FACTOR  # uniform


def test_held_out_queries_come_from_stored_rows_that_are_left_out_of_their_truth(make_library):
    lib = make_library(index="flat")
    _import(lib, 0, clustered(600))
    store = lib.vector_store(clean=False)
    ids = lib.open_index().index.ids()
    image, image_ids, text, text_ids = held_out_queries(store, ids, 40)
    assert len(image) == len(image_ids) == len(text) == len(text_ids) == 20
    assert not np.isin(image_ids, text_ids).any()
    np.testing.assert_allclose(image, store.rows(image_ids), atol=1e-3)  # the stored rows themselves
    truth = without_self(exact_top_k(store, ids, image, 11), image_ids, 10)
    assert truth.shape == (20, 10)
    assert not (truth == image_ids[:, None]).any()  # a query never counts finding itself
    # what is left is the next ten: the exact top 11 minus the query's own row
    full = exact_top_k(store, ids, image, 11)
    assert (full[:, 0] == image_ids).all()
    np.testing.assert_array_equal(truth, full[:, 1:])
    # text-like queries are far from every stored vector, their source too, as captions are from
    # images; their source row is left out of their truth as well
    assert float((text @ store.rows(ids).T).max(axis=1).mean()) < 0.6
    text_truth = without_self(exact_top_k(store, ids, text, 11), text_ids, 10)
    assert not (text_truth == text_ids[:, None]).any()


def test_an_approximate_index_reaches_the_recall_target_and_scores_exactly(make_library):
    lib = make_library(index="ivf")
    vectors = clustered(4000)
    _import(lib, 0, vectors)
    snapshot = lib.open_index()
    index = snapshot.index
    assert index.info.factory.startswith("IVF") and not index.info.exact
    assert index.info.recall_at_10 >= index_module.RECALL_TARGET
    assert index.info.recall_text_like >= index_module.RECALL_TARGET
    # an independent check with fresh queries: what the tuned depth finds, against brute force
    store = lib.vector_store(clean=False)
    ids = lib.live_unit_ids()
    queries = clustered(50, seed=9)
    scores, got = index.search(queries, 10)
    assert recall_at(got, exact_top_k(store, ids, queries, 10)) >= 0.9
    # scores are exact inner products with the stored float16 vectors, not the codes' estimates
    np.testing.assert_allclose(scores[0], index.vectors(got[0]) @ queries[0], rtol=1e-5, atol=1e-5)


def test_adding_a_few_units_publishes_a_delta_and_keeps_the_base(make_library, monkeypatch):
    lib = make_library(index="ivf")
    _import(lib, 0, clustered(3000))
    base_file = lib.index_path
    base_written = base_file.stat().st_mtime_ns
    first = lib.open_index()
    new = clustered(20, seed=5)

    def every_live_id(*_args, **_kwargs):
        raise AssertionError("publishing a delta read every live id")

    monkeypatch.setattr(Library, "live_unit_ids", every_live_id)  # the cost must follow the change
    _import(lib, 3000, new)
    monkeypatch.undo()
    assert lib.index_path == base_file and base_file.stat().st_mtime_ns == base_written  # not rewritten
    state = lib.index_state()
    assert state["delta"] and np.load(base_file.parent / state["delta"]).size == 20
    second = lib.open_index(repair=False, previous=first)
    assert second.index._base is first.index._base  # the reader did not read the base again
    assert np.array_equal(second.index.ids(), lib.live_unit_ids())
    _, got = second.index.search(new[:3], 1)
    assert got[:, 0].tolist() == lib.live_unit_ids()[-20:][:3].tolist()  # the new units are found exactly


def test_removed_units_become_tombstones_and_are_never_returned(make_library):
    lib = make_library()
    vectors = clustered(400)
    _import(lib, 0, vectors)
    from glimpse.indexer.writer import CatalogueWriter, IndexSummary

    live = lib.live_unit_ids()
    with lib.Session() as s:
        from sqlalchemy import select

        from glimpse.core.catalogue import Unit

        asset_ids = list(s.scalars(select(Unit.asset_id).where(Unit.id.in_(live[:10].tolist()))))
    with lib.writer_lock():
        CatalogueWriter(lib, IndexSummary(), 0.95).remove(asset_ids)
        assert list(lib.removed_dir.glob("*.npy"))  # noted before the commit
        lib.rebuild_index()
    assert not list(lib.removed_dir.glob("*.npy"))  # spent by the publish
    state = lib.index_state()
    assert state["hidden"] and state["delta"] is None  # 10 of 400: below the merge fraction
    index = lib.open_index().index
    assert np.array_equal(index.ids(), lib.live_unit_ids())
    _, got = index.search(vectors[:10], 5)
    assert not np.isin(got, live[:10]).any()


def test_a_delta_past_the_merge_fraction_is_merged_into_the_base(make_library):
    lib = make_library(index="ivf")
    _import(lib, 0, clustered(2000))
    first_base = lib.index_state()["base"]
    _import(lib, 2000, clustered(int(2000 * index_module.MERGE_FRACTION) + 50, seed=3))
    state = lib.index_state()
    assert state["delta"] is None and state["base"]["name"] != first_base["name"]
    assert state["base"]["trained_n"] == first_base["trained_n"]  # merged, not trained again
    assert np.array_equal(lib.open_index().index.ids(), lib.live_unit_ids())


@pytest.mark.parametrize("allowed_count", [30, 3000])
def test_filtered_search_returns_k_allowed_hits_exact_or_through_the_index(
    make_library, monkeypatch, allowed_count
):
    monkeypatch.setattr(index_module, "EXACT_FILTER_MAX", 1000)  # 30: scored exactly; 3000: selector
    lib = make_library(index="ivf")
    vectors = clustered(4000)
    _import(lib, 0, vectors)
    index = lib.open_index().index
    ids = lib.live_unit_ids()
    allowed = np.sort(np.random.default_rng(1).choice(ids, allowed_count, replace=False))
    queries = clustered(5, seed=7)
    _, got = index.search(queries, 10, allowed_ids=allowed)
    assert got.shape == (5, 10) and np.isin(got, allowed).all()
    truth = exact_top_k(lib.vector_store(clean=False), allowed, queries, 10)
    assert recall_at(got, truth) >= 0.9


def test_a_flat_index_built_in_memory_still_saves_and_loads(tmp_path):
    vectors = clustered(50)
    index = VectorIndex.build(np.arange(50) * 3, vectors, DIM)
    index.save(tmp_path / "i.faiss")
    loaded = VectorIndex.load(tmp_path / "i.faiss")
    assert loaded.ids().tolist() == (np.arange(50) * 3).tolist()
    assert loaded.search(vectors[:1], 1)[1][0, 0] == 0


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs (not even `except Exception`)."""


@pytest.mark.parametrize("setting", ["auto", "ivf"])
def test_a_crash_at_any_rename_of_an_import_leaves_a_library_whose_index_equals_the_catalogue(
    make_library, monkeypatch, setting
):
    import os

    lib = make_library(index=setting)
    _import(lib, 0, clustered(600))
    real_replace, real_rename = os.replace, os.rename
    start = 600
    for crash_at in range(1, 30):
        calls = 0

        def counting(real, at=crash_at):
            def call(*args, **kwargs):
                nonlocal calls
                calls += 1
                if calls == at:
                    raise Crash
                return real(*args, **kwargs)

            return call

        monkeypatch.setattr(os, "replace", counting(real_replace))
        monkeypatch.setattr(os, "rename", counting(real_rename))
        # big enough to pass the merge fraction every other time: both publish paths get cut
        n = 80 if crash_at % 2 else 10
        try:
            _import(lib, start, clustered(n, seed=crash_at))
            finished = True
        except Crash:
            finished = False
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
            monkeypatch.setattr(os, "rename", real_rename)
        start += n
        lib.close()
        lib = make_library(index=setting)  # a new process opening the library
        snapshot = lib.open_index()
        assert np.array_equal(snapshot.index.ids(), lib.live_unit_ids()), f"crash at rename {crash_at}"
        if finished:
            break
    else:
        pytest.fail("the import never ran to its end")


def test_a_removal_no_writer_noted_is_caught_and_repaired_when_the_index_is_opened(make_library):
    from sqlalchemy import delete

    from glimpse.core.catalogue import Unit

    lib = make_library()
    _import(lib, 0, clustered(300))
    gone = int(lib.live_unit_ids()[7])
    with lib.Session.begin() as s:  # behind the writer's back: no removal note
        s.execute(delete(Unit).where(Unit.id == gone))
    _import(lib, 300, clustered(5, seed=4))  # a delta version that cannot know about it
    assert gone in lib.open_index(repair=False).index.ids()
    repaired = lib.open_index()  # the start-up check compares with the catalogue and repairs
    assert repaired.repaired and gone not in repaired.index.ids()
    assert np.array_equal(repaired.index.ids(), lib.live_unit_ids())


@pytest.mark.parametrize("setting", ["flat", "ivf"])
def test_excluded_ids_are_never_returned_and_k_hits_come_from_the_rest(make_library, setting):
    # Base + delta + tombstones: the exclusion applies to every part, beside the tombstones.
    lib = make_library(index=setting)
    _import(lib, 0, clustered(2000))
    _import(lib, 2000, clustered(60, seed=5))  # a delta
    live = lib.live_unit_ids()
    with lib.Session() as s:
        from sqlalchemy import select

        from glimpse.core.catalogue import Unit

        gone = list(s.scalars(select(Unit.asset_id).where(Unit.id.in_(live[100:110].tolist()))))
    from glimpse.indexer.writer import CatalogueWriter, IndexSummary

    with lib.writer_lock():
        CatalogueWriter(lib, IndexSummary(), 0.95).remove(gone)
        lib.rebuild_index()
    index = lib.open_index().index
    assert index.delta_size and index.tombstones
    queries = clustered(4, seed=9)
    _, first = index.search(queries, 30)
    taken = np.unique(np.concatenate([first[:, :20].ravel(), index.ids()[-30:]]))  # base and delta ids
    _, rest = index.search(queries, 10, excluded_ids=taken)
    assert rest.shape == (4, 10) and (rest >= 0).all()
    assert not np.isin(rest, taken).any() and not np.isin(rest, live[100:110]).any()
    if setting == "ivf":  # every list probed: the approximation aside, the same ranking as exact
        nlist = int(faiss.extract_index_ivf(index._base).nlist)
        index.info = dataclasses.replace(index.info, nprobe=nlist, k_factor=1000)
        _, rest = index.search(queries, 10, excluded_ids=taken)
    truth = exact_top_k(lib.vector_store(clean=False), np.setdiff1d(index.ids(), taken), queries, 10)
    assert recall_at(rest, truth) == 1.0
    allowed = index.ids()[::3]
    _, filtered = index.search(queries, 10, allowed_ids=allowed, excluded_ids=taken)
    assert np.isin(filtered, allowed).all() and not np.isin(filtered, taken).any()


@pytest.mark.parametrize("setting", ["flat", "ivf"])
def test_spare_candidates_go_on_past_k_in_exact_score_order_with_the_delta_s_hits(make_library, setting):
    """What an approximate base re-ranked past the k-th comes back with ``spare``: the same first
    k, then the rest best first, exact scores, deltas' units among them, never a tombstone."""
    from glimpse.search.batching import IndexQuery, search_together

    lib = make_library(index=setting)
    _import(lib, 0, clustered(2000))
    _import(lib, 2000, clustered(60, seed=5))  # a delta
    index = lib.open_index().index
    queries = clustered(4, seed=9)
    scores, ids = index.search(queries, 10)
    spare_scores, spare_ids = index.search(queries, 10, spare=True)
    np.testing.assert_array_equal(spare_ids[:, :10], ids)
    np.testing.assert_array_equal(spare_scores[:, :10], scores)
    # A filter allowing few enough to score them all exactly: all of them are spare, best first.
    allowed = index.ids()[::7]
    _, filtered = index.search(queries, 10, allowed_ids=allowed)
    every_scores, every_allowed = index.search(queries, 10, allowed_ids=allowed, spare=True)
    assert every_allowed.shape == (4, len(allowed)) and (np.sort(every_allowed, axis=1) == allowed).all()
    np.testing.assert_array_equal(every_allowed[:, :10], filtered)
    assert (np.diff(every_scores, axis=1) <= 0).all()
    if setting == "flat":
        assert spare_ids.shape == ids.shape  # exact: nothing was re-ranked, nothing spare
        return
    assert spare_ids.shape[1] == rerank_depth(10, index.info.k_factor) > 10
    delta = index.ids()[-60:]
    for q, row_ids, row_scores in zip(queries, spare_ids, spare_scores, strict=True):
        valid = row_ids >= 0
        row_ids, row_scores = row_ids[valid], row_scores[valid]
        assert len(np.unique(row_ids)) == len(row_ids) and (np.diff(row_scores) <= 0).all()
        np.testing.assert_allclose(row_scores, index.vectors(row_ids) @ q, rtol=1e-5, atol=1e-5)
        # every delta unit that beats the last spare candidate is in the row
        beating = delta[index.vectors(delta) @ q > row_scores[-1] + 1e-5]
        assert np.isin(beating, row_ids).all()
    # the micro-batching searcher passes spare candidates to the queries that ask for them
    (asked, _), (plain, _) = search_together(
        [IndexQuery(index, queries[0], 10, spare=True), IndexQuery(index, queries[1], 10)]
    )
    assert asked.shape[1] == spare_ids.shape[1] and plain.shape[1] == 10
