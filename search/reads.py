"""What the read path asks the catalogue: hits by unit id, items, units, filtered unit ids, stats.

Every function takes the :class:`~glimpse.core.library.Library` and opens its own short session, so
each answer is one consistent view even while an indexer writes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, bindparam, func, select, text

from glimpse.core.catalogue import Asset, IndexRun, Unit, indexed_units
from glimpse.core.library import IndexSnapshot, Library
from glimpse.core.vectors import SegmentsOf
from glimpse.core.vocabulary import Kind, Status
from glimpse.search.moments import Read, SegmentTable

# Scores are reported with this many decimals, and `min_score` compares the reported value: a
# client that passes a score it was shown must get that result back, whichever way it rounded.
SCORE_DECIMALS = 6

# The statements every search issues, built once with a bound list of ids: built per search,
# `IN` of literal values coerces one bind per value, and that cost SQLAlchemy ~0.4 ms of a 1.4 ms
# read of 11 hits (bench/scale.py's library of 20,000 images, alternated in one process).
_HITS = (
    select(Unit.id, Unit.asset_id, Unit.t_start, Unit.t_end, Unit.t_best, Asset)
    .join(Asset, Asset.id == Unit.asset_id)
    .where(Unit.id.in_(bindparam("ids", expanding=True)))
)
_ASSETS = select(Asset).where(Asset.id.in_(bindparam("ids", expanding=True)))


class ItemNotFound(LookupError):
    """No item (or unit) with this id, or not an indexed one where that is required."""


@dataclass(slots=True)
class Hit:
    """One unit the index returned, with its time range when it is a video segment. Not frozen
    (nothing changes one): a page of moments makes ~100, and a frozen dataclass takes ~3x as
    long to make (0.9 against 0.3 µs)."""

    unit_id: int
    asset_id: int
    score: float
    t_start: float | None
    t_end: float | None
    t_best: float | None


def read_hits(
    library: Library, ids: np.ndarray, scores: np.ndarray, min_score: float | None
) -> tuple[list[Hit], dict[int, Asset]]:
    """The hits (in the given order) whose asset is indexed, and those assets, read in one
    session. Ids the catalogue no longer knows (removed since the index was built) are dropped."""
    ids_, scores_ = ids.tolist(), [float(x) for x in scores]
    pairs = [(ids_[j], scores_[j]) for j in _passing(ids_, scores_, min_score)]
    if not pairs:
        return [], {}
    # One statement: each unit by primary key and its asset by primary key, the status checked
    # here, not in SQL: given `status = ?` next to `id IN (...)` of more than a few ids, SQLite
    # (without ANALYZE statistics) prefers ix_assets_status_kind and walks every indexed asset:
    # ~0.1 s at a million. Two statements took 0.95 ms for 13 hits at 5M units, one 0.72 (warm).
    with library.Session() as s:
        found = s.execute(_HITS, {"ids": [i for i, _ in pairs]}).all()
    rows = {r[0]: r for r in found if r[5].status == Status.INDEXED}
    assets = {r[5].id: r[5] for r in rows.values()}
    hits = [Hit(i, rows[i][1], score, rows[i][2], rows[i][3], rows[i][4]) for i, score in pairs if i in rows]
    return hits, assets


def _passing(ids: list[int], scores: list[float], min_score: float | None) -> list[int]:
    """Positions of the real hits (id >= 0) whose score, as reported (SCORE_DECIMALS), reaches
    ``min_score``: the one rule both reads of hits apply."""
    return [
        j
        for j, (i, score) in enumerate(zip(ids, scores, strict=True))
        if i >= 0 and (min_score is None or round(score, SCORE_DECIMALS) >= min_score)
    ]


def read_listed_hits(
    library: Library, ids: np.ndarray, scores: np.ndarray, min_score: float | None, listed: SegmentsOf
) -> tuple[list[Hit], dict[int, Asset]]:
    """:func:`read_hits`, where ``listed`` (``VectorStore.segments_of_ids`` of ``ids``) gives the
    video segments among them: their times and videos come from the shards' segment lists, and
    only their videos are read from the catalogue (a page's hundreds of seconds of a dozen
    scenes are a dozen assets; by unit, SQLite's row reads cost ~10 µs a hit). The other ids
    are read as :func:`read_hits` reads them. A segment whose video is not indexed (any more)
    is dropped, as there; its unit is taken as the served index holds it, as moments take the
    segments around it (search/windows.py)."""
    ids_, scores_ = ids.tolist(), [float(x) for x in scores]
    keep = _passing(ids_, scores_, min_score)
    on_list = listed.listed.tolist()
    off = [j for j in keep if not on_list[j]]
    others, assets = read_hits(library, ids[off], scores[off], None) if off else ([], {})
    seg = listed.segments
    video, start, end, best = (seg[f].tolist() for f in ("asset", "t_start", "t_end", "t_best"))
    videos = sorted({video[j] for j in keep if on_list[j]})
    if videos:
        with library.Session() as s:
            found = s.scalars(_ASSETS, {"ids": videos})
            assets |= {a.id: a for a in found if a.status == Status.INDEXED}
    by_unit = {h.unit_id: h for h in others}
    hits: list[Hit] = []
    for j in keep:
        if not on_list[j]:
            if (h := by_unit.get(ids_[j])) is not None:
                hits.append(h)
        elif video[j] in assets:
            hits.append(Hit(ids_[j], video[j], scores_[j], start[j], end[j], best[j]))
    return hits, assets


def indexed_items(library: Library, asset_ids: list[int]) -> tuple[dict[int, Asset], dict[int, list[int]]]:
    """The indexed ones of ``asset_ids`` and each one's unit ids (ascending), in one session."""
    if not asset_ids:
        return {}, {}
    with library.Session() as s:
        assets = {
            a.id: a
            for a in s.scalars(select(Asset).where(Asset.id.in_(asset_ids)))
            if a.status == Status.INDEXED
        }
        units: dict[int, list[int]] = {}
        for unit_id, asset_id in s.execute(
            select(Unit.id, Unit.asset_id).where(Unit.asset_id.in_(list(assets))).order_by(Unit.id)
        ):
            units.setdefault(asset_id, []).append(unit_id)
    return assets, units


def allowed_units(library: Library, conditions: list[ColumnElement[bool]]) -> np.ndarray:
    """Ids (int64, ascending) of the indexed units whose asset matches every condition."""
    with library.Session() as s:
        return np.fromiter(s.scalars(indexed_units(*conditions)), dtype=np.int64)


def item_unit_ids(library: Library, asset_id: int) -> np.ndarray:
    """The units of an indexed item (its image, or its video's segments); ItemNotFound otherwise."""
    ids = allowed_units(library, [Asset.id == asset_id])
    if not len(ids):
        raise ItemNotFound(f"no indexed item with id {asset_id}")
    return ids


def segments_near(library: Library, reads: Sequence[Read]) -> list[tuple[SegmentTable, bool]]:
    """For each read, the segments it asks for in time order, and whether fewer than asked exist
    (the video ends there); all in one round trip, each part a seek on ``ix_units_asset_time``.

    Written as SQL text with bound parameters (:func:`near_statement`) and run on the driver's
    cursor: a page asks for ~40 parts, and composing them as SQLAlchemy expressions cost more
    (~0.8 ms a part) than the database spends answering."""
    if not reads:
        return []
    statement, params = near_statement(reads, library.engine.dialect.paramstyle)
    with library.Session() as s:
        # The driver's cursor itself: SQLAlchemy's result rows cost ~0.4 µs each, about a third
        # of what the database takes to find them.
        cursor = s.connection().connection.cursor()
        try:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
    if not rows:
        return [(_table([]), True) for _ in reads]
    part, *columns = zip(*rows, strict=True)
    table = _table(list(zip(*columns, strict=True))) if None in columns[3] else _columns(*columns)
    parts_of = np.array(part, dtype=np.int64)
    # Each part in time order (a database keeps no order across UNION ALL), parts in order.
    order = np.lexsort((table.unit_id, table.t_start, parts_of))
    table = table.take_rows(order)
    bounds = np.searchsorted(parts_of[order], np.arange(len(reads) + 1))
    return [
        (table.take_rows(slice(bounds[j], bounds[j + 1])), bounds[j + 1] - bounds[j] < r.count)
        for j, r in enumerate(reads)
    ]


def near_statement(reads: Sequence[Read], paramstyle: str) -> tuple[str, dict[str, Any]]:
    """The SQL of :func:`segments_near` and its parameters, in the driver's ``paramstyle``
    (``pyformat`` for psycopg, ``named``/``qmark`` drivers take ``:name``)."""
    mark = "%({})s" if paramstyle == "pyformat" else ":{}"
    parts: list[str] = []
    params: dict[str, Any] = {}
    for j, r in enumerate(reads):
        if r.after:
            near, sort = (">=" if r.inclusive else ">"), "t_start, id"
        else:
            near, sort = "<", "t_start DESC, id DESC"
        a, t, u, n = (mark.format(f"{c}{j}") for c in "atun")
        parts.append(
            f"SELECT * FROM (SELECT {j} AS part, id, t_start, t_end, t_best, shot_start FROM {Unit.__tablename__} "
            f"WHERE asset_id = {a} AND (t_start, id) {near} ({t}, {u}) ORDER BY {sort} LIMIT {n}) AS p{j}"
        )
        params |= {f"a{j}": r.asset_id, f"t{j}": float(r.t_start), f"u{j}": r.unit_id, f"n{j}": r.count}
    return " UNION ALL ".join(parts), params


def _columns(
    ids: Sequence[int],
    starts: Sequence[float],
    ends: Sequence[float],
    bests: Sequence[float],
    cuts: Sequence[Any],
) -> SegmentTable:
    return SegmentTable(
        np.array(ids, dtype=np.int64),
        np.array(starts, dtype=np.float64),
        np.array(ends, dtype=np.float64),
        np.array(bests, dtype=np.float64),
        np.array(cuts, dtype=bool),
    )


def _table(rows: Sequence[Any]) -> SegmentTable:
    """Rows of (id, t_start, t_end, t_best, shot_start) as a SegmentTable (t_best defaults to t_start)."""
    if not rows:
        empty = np.zeros(0)
        return SegmentTable(empty.astype(np.int64), empty, empty, empty, empty.astype(bool))
    ids, starts, ends, bests, cuts = zip(*rows, strict=True)
    bests = tuple(b if b is not None else a for a, b in zip(starts, bests, strict=True))
    return _columns(ids, starts, ends, bests, cuts)


def video_segments(library: Library, asset_id: int) -> SegmentTable:
    """A video's segments in time order, all of them (a sequence query fits each step's moments
    over the whole video). Read through the Core connection into arrays: ORM rows for thousands
    of segments each would cost more than the scoring."""
    query = (
        select(Unit.id, Unit.t_start, Unit.t_end, Unit.t_best, Unit.shot_start)
        .where(Unit.asset_id == asset_id, Unit.t_start.is_not(None))
        .order_by(Unit.t_start, Unit.id)
    )
    with library.Session() as s:
        return _table(s.connection().execute(query).all())


class SegmentCache:
    """The segment tables of recently searched videos, least recently used first out.

    A video's segments change only when the video is indexed again, which sets its
    ``indexed_at``: that is part of the key, so a re-indexed video is read afresh and its old
    entry ages out. Bounded by the total segments held (about 33 bytes each: 2M segments, the
    default, are ~560 hours at 1 segment/s in ~66 MB). Thread-safe (the API searches from threads).
    """

    def __init__(self, max_segments: int = 2_000_000) -> None:
        self.max_segments = max_segments
        self._tables: OrderedDict[tuple[int, object], SegmentTable] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, library: Library, asset_id: int, indexed_at: object) -> SegmentTable:
        key = (asset_id, indexed_at)
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                return table
        table = video_segments(library, asset_id)
        with self._lock:
            if key not in self._tables and len(table) <= self.max_segments:
                self._tables[key] = table
                self._held += len(table)
                while self._held > self.max_segments:
                    _, old = self._tables.popitem(last=False)
                    self._held -= len(old)
        return table


def get_item(library: Library, asset_id: int) -> tuple[Asset, list[Unit]]:
    """An item with its units in time order (any status: a failed item says why)."""
    with library.Session() as s:
        asset = s.get(Asset, asset_id)
        if asset is None:
            raise ItemNotFound(f"no item with id {asset_id}")
        units = list(s.scalars(select(Unit).where(Unit.asset_id == asset_id).order_by(Unit.t_start, Unit.id)))
        return asset, units


def get_unit(library: Library, unit_id: int) -> Unit:
    with library.Session() as s:
        unit = s.get(Unit, unit_id)
        if unit is None:
            raise ItemNotFound(f"no unit with id {unit_id}")
        return unit


def indexed_unit(library: Library, unit_id: int) -> Unit:
    """A unit of an indexed item (a query may use it as its example); ItemNotFound otherwise."""
    with library.Session() as s:
        unit = s.scalar(select(Unit).join(Asset).where(Unit.id == unit_id, Asset.status == Status.INDEXED))
    if unit is None:
        raise ItemNotFound(f"no indexed unit with id {unit_id}")
    return unit


# The distinct categories by a skip scan: each step seeks the next category in its index, so the
# cost grows with the categories, not the items (SELECT DISTINCT read all 5M index entries: 315 ms).
# Static SQL, the same on SQLite and PostgreSQL (neither plans DISTINCT this way by itself).
DISTINCT_CATEGORIES = text(
    f"""
    WITH RECURSIVE c(category) AS (
        SELECT min(category) FROM {Asset.__tablename__}
        UNION ALL
        SELECT (SELECT min(category) FROM {Asset.__tablename__} WHERE category > c.category)
        FROM c WHERE c.category IS NOT NULL
    )
    SELECT category FROM c WHERE category IS NOT NULL
    """
)


def library_stats(library: Library, snapshot: IndexSnapshot) -> dict[str, Any]:
    """Counts by kind, failures, model, index, facets and the last run (``GET /v1/stats``)."""
    with library.Session() as s:
        by_kind = dict(
            s.execute(
                select(Asset.kind, func.count()).where(Asset.status == Status.INDEXED).group_by(Asset.kind)
            ).all()
        )
        failed = s.scalar(select(func.count()).select_from(Asset).where(Asset.status == Status.FAILED)) or 0
        last = s.scalar(select(IndexRun).order_by(IndexRun.id.desc()).limit(1))
        categories = list(s.scalars(DISTINCT_CATEGORIES))
        # One aggregate a statement: SQLite answers a lone min() or max() from the index's end,
        # but scans the whole index for both together (512 ms at 5M items).
        price = (s.scalar(select(func.min(Asset.price))), s.scalar(select(func.max(Asset.price))))
    info = library.model_info()
    return {
        "items": {kind.value: by_kind.get(kind, 0) for kind in Kind},
        "failed": failed,
        "units": len(snapshot.index),
        "model": None
        if info is None
        else {"name": info.model_name, "pretrained": info.pretrained, "dim": info.dim},
        "index": index_stats(library, snapshot),
        "facets": {"categories": categories, "price": {"min": price[0], "max": price[1]}},
        "last_run": None
        if last is None
        else {
            "status": last.status,
            "started_at": last.started_at.isoformat() if last.started_at else None,
            "finished_at": last.finished_at.isoformat() if last.finished_at else None,
            "indexed": last.indexed,
            "unchanged": last.unchanged,
            "removed": last.removed,
            "failed": last.failed,
        },
    }


def index_stats(library: Library, snapshot: IndexSnapshot) -> dict[str, Any]:
    """The served index: type, sizes, bytes per vector on disk, and its measured recall@10."""
    index, info = snapshot.index, snapshot.index.info
    bpv = index.bytes_per_vector(library.index_path)
    return {
        "type": "flat-ip (exact)" if info.exact else f"{info.factory} (approximate, re-ranked exactly)",
        "factory": info.factory,
        "exact": info.exact,
        "size": len(index),
        "version": snapshot.version,
        "base_size": len(index.base_ids),
        "delta_size": index.delta_size,
        "tombstones": index.tombstones,
        "nprobe": info.nprobe,
        "k_factor": info.k_factor,
        "recall_at_10": None if info.recall_at_10 is None else round(info.recall_at_10, 4),
        "recall_text_like_at_10": None if info.recall_text_like is None else round(info.recall_text_like, 4),
        "recall_queries": info.recall_queries,
        "bytes_per_vector": None if bpv is None else round(bpv, 1),
        "vector_bytes_per_vector": 2 * index.dim,  # the float16 rows re-ranking reads
    }
