"""Moments over an archive in a real library (SQLite and PostgreSQL, the FAISS index, vectors read
from the shards): the search's moments, grown from its hits, are the moments of fitting every
segment of every video (the method before growth, kept as the oracle), page after page, and the
reads around the hits use the (asset_id, t_start) index instead of walking a video."""

from __future__ import annotations

import dataclasses
import re

import faiss
import numpy as np
import pytest
from sqlalchemy import insert

from glimpse.core.catalogue import Asset, Unit, utcnow
from glimpse.core.library import Library
from glimpse.core.models import ModelRef
from glimpse.core.vectors import SegmentsOf, segment_rows
from glimpse.core.vocabulary import Kind, Status
from glimpse.search import reads
from glimpse.search.engine import SearchEngine
from glimpse.search.moments import Read, SegmentTable, fit_table
from glimpse.search.query import SearchQuery

DIM = 32
VIDEOS = 8
SECONDS = 600  # per video, one segment a second
TOPICS = 12


class QueryVectors:
    """Query "i" is the i-th vector: the fitting is under test here, not the text encoder."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def text(self, text: str) -> np.ndarray:
        return self.vectors[int(text)]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(params=["written", "listed later", "catalogue", "ivf"])
def archive(request, make_settings):  # type: ignore[no-untyped-def]
    """Videos made of scenes (5-90 s, a cut before each), each scene a noisy copy of a topic.

    Where moments read the segments next to a hit: the shards list them as the indexer writes
    them ("written"); a shard from before they did gets its list when the index is published
    ("listed later"); a shard without one is read from the catalogue ("catalogue"). "ivf" is
    "written" under an approximate index probing every list, so its ranking is exact while a
    search also returns its spare candidates, the hits a page takes next."""
    rng = np.random.default_rng(0)
    topics = _unit(rng.standard_normal((TOPICS, DIM)))
    settings = make_settings(index="ivf") if request.param == "ivf" else make_settings()
    library = Library(settings)
    with library.writer_lock():
        library.bind_model(ModelRef("archive", None), DIM)
        store = library.vector_store()
        now = utcnow()
        with library.Session.begin() as s:
            for v in range(VIDEOS):
                asset_id = s.execute(
                    insert(Asset).returning(Asset.id),
                    {
                        "path": f"/archive/{v}.mp4",
                        "kind": Kind.VIDEO,
                        "size": 1,
                        "mtime_ns": 1,
                        "status": Status.INDEXED,
                        "indexed_at": now,
                        "updated_at": now,
                        "duration": float(SECONDS),
                    },
                ).scalar_one()
                rows, vectors, t = [], [], 0
                while t < SECONDS:
                    length = min(int(rng.integers(5, 91)), SECONDS - t)
                    topic = topics[rng.integers(0, TOPICS)]
                    vectors.append(_unit(topic + 0.5 * rng.standard_normal((length, DIM)) / np.sqrt(DIM) * 4))
                    rows += [
                        {
                            "asset_id": asset_id,
                            "t_start": float(t + j),
                            "t_end": float(t + j + 1),
                            "t_best": t + j + 0.5,
                            "shot_start": j == 0 and t > 0,
                        }
                        for j in range(length)
                    ]
                    t += length
                ids = (
                    s.execute(insert(Unit).returning(Unit.id, sort_by_parameter_order=True), rows)
                    .scalars()
                    .all()
                )
                ids = np.asarray(ids, dtype=np.int64)
                segments = None
                if request.param in ("written", "ivf"):
                    segments = segment_rows(ids, rows)
                store.append(ids, np.concatenate(vectors), segments)
        library.rebuild_index()
        listed = [store.segments_of(path) for path in store.shards()]
        assert all(table is not None and len(table) == SECONDS for table in listed), [
            None if t is None else len(t) for t in listed
        ]
        if request.param == "catalogue":
            for path in store.shards():
                (path / "segments.npy").unlink()
    queries = _unit(topics + 0.6 * rng.standard_normal((TOPICS, DIM)) / np.sqrt(DIM) * 4)
    engine = SearchEngine(library, settings, QueryVectors(queries))  # type: ignore[arg-type]
    if request.param == "ivf":
        index = engine.snapshot.index
        assert not index.info.exact
        nlist = int(faiss.extract_index_ivf(index._base).nlist)
        index.info = dataclasses.replace(index.info, nprobe=nlist, k_factor=1000)
    yield engine
    library.close()


def oracle(engine: SearchEngine, query: int) -> list[tuple]:
    """Every video's moments from all of its segments (fit_table), best first."""
    vector = engine.embedder.text(str(query))  # type: ignore[union-attr]
    typical = engine._typical(vector)
    found = []
    with engine.library.Session() as s:
        videos = list(s.scalars(Asset.__table__.select().with_only_columns(Asset.id)))
    for asset_id in videos:
        asset, _ = reads.get_item(engine.library, asset_id)
        table, scores = engine._scored_segments(asset, vector[None, :])
        per_video = engine.settings.moments_per_video
        found += [
            (m.asset_id, m.start, m.end, m.best_time, m.unit_id, m.score)
            for m in fit_table(asset_id, table, scores[:, 0], per_video=per_video, typical=typical)
        ]
    return sorted(found, key=lambda f: (-f[5], f[0], f[1]))


def shown(engine: SearchEngine, query: int, k: int, offset: int = 0) -> list[tuple]:
    page = engine.search(SearchQuery(q=str(query), k=k, offset=offset, media="video", mode="vector"))
    return [(r.id, r.start, r.end, r.best_time, r.unit_id, r.score) for r in page.results]


def same(got: list[tuple], expected: list[tuple]) -> bool:
    """The same moments; scores equal up to float32 summation order (one matrix product per
    video there, one per batch of reads here)."""
    return [g[:5] for g in got] == [e[:5] for e in expected] and np.allclose(
        [g[5] for g in got], [e[5] for e in expected], atol=1e-5
    )


@pytest.mark.parametrize("query", range(0, TOPICS, 3))
def test_the_moments_grown_from_the_hits_are_those_of_fitting_every_segment_page_after_page(archive, query):  # type: ignore[no-untyped-def]
    expected = oracle(archive, query)
    assert same(shown(archive, query, k=7), expected[:7])
    assert same(shown(archive, query, k=7, offset=7), expected[7:14])
    assert same(shown(archive, query, k=30), expected[:30])


def test_segments_near_reads_before_and_after_in_time_order_to_the_video_s_ends(archive):  # type: ignore[no-untyped-def]
    library = archive.library
    with library.Session() as s:
        asset_id, unit_id, t = s.execute(
            Unit.__table__.select()
            .with_only_columns(Unit.asset_id, Unit.id, Unit.t_start)
            .where(Unit.t_start == 100.0)
        ).first()
    before, after, start, end = reads.segments_near(
        library,
        [
            Read(asset_id, t, unit_id, after=False, count=5),
            Read(asset_id, t, unit_id, after=True, count=5, inclusive=True),
            Read(asset_id, 3.0, unit_id - 97, after=False, count=10),
            Read(asset_id, SECONDS - 3.0, unit_id + SECONDS - 103, after=True, count=10),
        ],
    )
    assert before[0].t_start.tolist() == [95.0, 96.0, 97.0, 98.0, 99.0] and not before[1]
    assert after[0].t_start.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0] and not after[1]
    assert after[0].unit_id[0] == unit_id
    assert start[0].t_start.tolist() == [0.0, 1.0, 2.0] and start[1]  # fewer than asked: the start
    assert end[0].t_start.tolist() == [SECONDS - 2.0, SECONDS - 1.0] and end[1]


def test_a_video_search_reads_segments_by_index_not_by_walking_the_table(archive, request, monkeypatch):  # type: ignore[no-untyped-def]
    if request.node.callspec.params["archive"] != "catalogue":
        pytest.skip("the shards list these segments: no SQL is read (the next test)")
    if archive.library.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner is checked; PostgreSQL plans from its statistics")
    asked: list[list[Read]] = []
    real = reads.segments_near

    def record(library, wanted):  # type: ignore[no-untyped-def]
        asked.append(list(wanted))
        return real(library, wanted)

    monkeypatch.setattr(reads, "segments_near", record)
    assert shown(archive, 0, k=10)
    assert asked, "the search read segments around its hits"
    with archive.library.engine.connect() as conn:
        raw = conn.connection.driver_connection
        for wanted in asked:
            statement, parameters = reads.near_statement(wanted, "named")
            plan = " | ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert not re.search(r"SCAN units\b", plan), plan
            assert plan.count("USING INDEX ix_units_asset_time") == len(wanted), plan


def test_shards_that_list_their_segments_answer_a_video_search_without_sql(archive, request, monkeypatch):  # type: ignore[no-untyped-def]
    if request.node.callspec.params["archive"] == "catalogue":
        pytest.skip("no list in these shards: the catalogue answers (the test above)")
    asked: list[Read] = []
    real = reads.segments_near
    monkeypatch.setattr(
        reads, "segments_near", lambda library, wanted: asked.extend(wanted) or real(library, wanted)
    )
    assert shown(archive, 0, k=10)
    assert asked == []


def test_a_shard_window_is_the_catalogue_s_read(archive, request):  # type: ignore[no-untyped-def]
    """Before and after a segment, cut short by either end of the video, or one segment past the
    nearest cuts: what segments_near returns."""
    if request.node.callspec.params["archive"] == "catalogue":
        pytest.skip("no list in these shards")
    library = archive.library
    store = archive.snapshot.index.store
    with library.Session() as s:
        asset_id, unit_id = s.execute(
            Unit.__table__.select().with_only_columns(Unit.asset_id, Unit.id).where(Unit.t_start == 100.0)
        ).first()
    one = np.array
    for seed, t, before, after in [
        (unit_id, 100.0, 5, 5),
        (unit_id - 97, 3.0, 10, 4),  # the video starts 3 segments before
        (unit_id + SECONDS - 103, SECONDS - 3.0, 4, 10),  # and ends 2 after
    ]:
        wanted = [
            Read(asset_id, t, seed, after=False, count=before),
            Read(asset_id, t, seed, after=True, count=after + 1, inclusive=True),
        ]
        (earlier, at_start), (later, at_end) = reads.segments_near(library, wanted)
        table = SegmentTable(*(np.concatenate([getattr(earlier, f), getattr(later, f)]) for f in FIELDS))
        for stop_at_cuts in (False, True):
            w = store.video_windows(
                one([seed]), one([asset_id]), one([before]), one([after]), one([stop_at_cuts])
            )
            expected, lo, hi, p = table, 0, len(table), len(earlier)
            cuts = np.flatnonzero(table.cut_before)
            if stop_at_cuts and len(cuts[cuts < p]) and cuts[cuts < p][-1] > 0:
                lo = int(cuts[cuts < p][-1]) - 1
            if stop_at_cuts and len(cuts[cuts > p]) and cuts[cuts > p][0] < len(table):
                hi = int(cuts[cuts > p][0]) + 1
            expected = table.take_rows(slice(lo, hi))
            assert w.listed[0] and w.seed[0] == p - lo
            assert w.segments["id"].tolist() == expected.unit_id.tolist()
            for column in ("t_start", "t_end", "t_best"):
                assert w.segments[column].tolist() == getattr(expected, column).tolist()
            assert w.segments["cut"].tolist() == expected.cut_before.tolist()
            assert w.at_start[0] == (at_start and lo == 0) and w.at_end[0] == (at_end and hi == len(table))
            assert w.current.all() and np.array_equal(w.vectors, store.rows(expected.unit_id))
    # Not a segment of that video: the shard cannot say, the catalogue must.
    w = store.video_windows(one([unit_id]), one([asset_id + 1]), one([5]), one([5]), one([False]))
    assert not w.listed[0] and len(w.segments) == 0


FIELDS = ("unit_id", "t_start", "t_end", "t_best", "cut_before")


def test_a_page_of_moments_takes_its_later_hits_from_the_first_search_s_spare_candidates(
    archive, request, monkeypatch
):  # type: ignore[no-untyped-def]
    if request.node.callspec.params["archive"] != "ivf":
        pytest.skip("an exact index re-ranks nothing: no spare candidates")
    searches, hit_reads = [], []
    real_search = archive.searcher.search
    monkeypatch.setattr(
        archive.searcher, "search", lambda *a, **k: searches.append(a[2]) or real_search(*a, **k)
    )
    for name in ("read_hits", "read_listed_hits"):
        real = getattr(reads, name)
        monkeypatch.setattr(reads, name, lambda *a, real=real: hit_reads.append(len(a[1])) or real(*a))
    assert same(shown(archive, 0, k=7), oracle(archive, 0)[:7])
    assert len(searches) == 1, (searches, hit_reads)
    assert sum(hit_reads) > searches[0], "the hits asked for filled the page: nothing spare was needed"


def test_the_first_search_asks_an_approximate_base_for_the_page_only_and_an_exact_one_for_a_quarter_more(
    archive, monkeypatch
):  # type: ignore[no-untyped-def]
    """An approximate base re-ranks k_factor candidates for every hit asked for, and its spare
    candidates hold the next hits anyway; an exact one has none to spare, and more cost it nothing."""
    searches = []
    real_search = archive.searcher.search
    monkeypatch.setattr(
        archive.searcher, "search", lambda *a, **k: searches.append(a[2]) or real_search(*a, **k)
    )
    shown(archive, 0, k=7)
    want = 7 + 1  # the page, and one more to know whether another page follows
    exact = archive.snapshot.index.info.exact
    assert exact == (archive.settings.index != "ivf")
    assert searches[0] == (want + want // 4 if exact else want), searches


def test_hits_read_from_the_shards_lists_are_the_catalogue_s_and_drop_a_video_no_longer_indexed(
    archive, request
):  # type: ignore[no-untyped-def]
    """A search reads its video hits' times from the shards' lists and only their videos from
    the catalogue: the same hits as reading every unit, with ``min_score`` applied alike, and a
    video whose status is no longer ``indexed`` gone from both."""
    library, index = archive.library, archive.snapshot.index
    vector = archive.embedder.text("0")
    scores, ids = index.search(vector[None, :], 300)
    ids, scores = ids[0], scores[0]
    listed = index.store.segments_of_ids(ids, index.row_map)
    assert listed.listed.all() == (request.node.callspec.params["archive"] != "catalogue")
    min_score = round(float(scores[150]), 6)

    def both(floor):  # type: ignore[no-untyped-def]
        by_unit = reads.read_hits(library, ids, scores, floor)
        from_lists = reads.read_listed_hits(library, ids, scores, floor, listed)
        assert from_lists[0] == by_unit[0] and from_lists[1].keys() == by_unit[1].keys()
        return by_unit[0]

    every = both(None)
    assert len(every) == len(ids) and len({h.asset_id for h in every}) > 1
    # Some listed, some not (images, or shards without lists, beside listed ones): in order.
    some = listed.listed & (np.arange(len(ids)) % 3 != 0)
    mixed = reads.read_listed_hits(
        library, ids, scores, None, SegmentsOf(listed.segments, np.where(some, listed.shot, -1))
    )
    assert mixed[0] == every
    assert len(both(min_score)) == sum(round(float(s), 6) >= min_score for s in scores)
    gone = every[0].asset_id
    with library.Session.begin() as s:
        s.get(Asset, gone).status = Status.PENDING
    left = both(None)
    assert left and gone not in {h.asset_id for h in left}
    assert len(left) == sum(h.asset_id != gone for h in every)
