"""The read path: a :class:`~glimpse.search.query.SearchQuery` -> a page of ranked items and moments.

Shared by ``glimpse search`` and the HTTP API. In order:

1. :meth:`SearchEngine.query_vector` composes the query's parts (text, example item or segment,
   uploaded image, negative text) into one unit vector, through the :class:`QueryEmbedder` passed in;
2. the filters become the set of allowed unit ids (SQL), and the index (the current
   :class:`~glimpse.core.library.IndexSnapshot`, see :mod:`glimpse.search.snapshots`) returns the
   top hits through the :class:`IndexSearcher` passed in (at once, or micro-batched by the API);
3. the hits are read from the catalogue (:mod:`glimpse.search.reads`) and video hits are grouped
   into moments (:mod:`glimpse.search.moments`); the page is cut from the ranked list.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from glimpse.core import fulltext
from glimpse.core.catalogue import Asset
from glimpse.core.index import VectorIndex
from glimpse.core.library import IndexSnapshot, Library
from glimpse.core.ocr_text import TextHit
from glimpse.core.settings import Settings
from glimpse.core.vectors import SegmentsOf
from glimpse.core.vocabulary import Kind
from glimpse.search import reads
from glimpse.search.embedding import QueryEmbedder
from glimpse.search.filters import build_conditions
from glimpse.search.fusion import rrf
from glimpse.search.moments import (
    Moment,
    Read,
    Rows,
    Run,
    Seed,
    SegmentTable,
    SequenceMatch,
    band,
    fit_hits,
    fit_table,
    hits_to_read,
    sequences,
)
from glimpse.search.query import K_MAX, OFFSET_MAX, Media, Mode, QueryError, SearchQuery, Sort
from glimpse.search.reads import SCORE_DECIMALS, Hit
from glimpse.search.relevance import RELEVANT, Calibration
from glimpse.search.snapshots import IndexHolder
from glimpse.search.text_ranking import fuse_ocr
from glimpse.search.text_ranking import text_hits as text_hits_of
from glimpse.search.windows import grow_in_windows

if TYPE_CHECKING:
    from PIL import Image

# Sequence queries look for their videos among this many top units of each step.
SEQUENCE_CANDIDATES = 256
FUSION_DEPTH = 50
"""Items taken from each ranking (vector, keyword) for hybrid and keyword searches: their result
lists hold at most this many items per ranking, the same for every page (stable pagination).
Two pages of 24 from each ranking; deeper, RRF's 1/(60 + rank) adds little, and every item taken
costs a catalogue read (bench/hybrid.py)."""
READ_SPAN = 6
"""Hits of the ranking looked up in the shards' segment lists at first, per result a page still
needs (then twice as many while that is not enough): a scene that matches sends its seconds, and
a page of bench/moments.py's archive reads ~5 hits a result; 6 settles ~80% of its pages in one
lookup, and looking up 16 a result cost more than the second lookups it spared (each id is a
binary search in the row map)."""
RELEVANT_MAX = OFFSET_MAX + K_MAX
"""Most results of a vector search sorted by price or date (the whole relevant set, up to this)."""
_TEXT_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="glimpse-keyword")
KEYWORD_PARTIAL = 0.25
"""The relevance of a keyword match of only some of the query's words (alone: not relevant)."""


class ModelNotLoaded(RuntimeError):
    """The query needs the model (a text or an image) and this engine has none yet."""


class IndexSearcher(Protocol):
    """Top-``k`` of query vectors (nq, D) in ``index``, restricted to ``allowed`` ids when given,
    never one of ``excluded``: (scores, ids), each (nq, k), best first, ids -1 where fewer exist;
    with ``spare``, wider: the spare candidates past ``k`` too (``VectorIndex.search``)."""

    def search(
        self,
        index: VectorIndex,
        vectors: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        excluded: np.ndarray | None = None,
        spare: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]: ...


class DirectSearch:
    """Each search on its own (the CLI; the API passes a micro-batching searcher instead)."""

    def search(
        self,
        index: VectorIndex,
        vectors: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        excluded: np.ndarray | None = None,
        spare: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        return index.search(vectors, k, allowed, excluded, spare)


@dataclass
class _Made:
    """What one search's calls of ``SearchEngine._group`` made of its hits so far (a page takes ~3
    calls, each over all the hits so far: building seeds and results again cost ~0.3-1 ms a page
    of moments): the moments grown, by the hit they grew from; a seed for each hit, in order; each
    result, by its hit's unit id and moment."""

    runs: dict[int, Run] = field(default_factory=dict)
    seeds: list[Seed] = field(default_factory=list)
    peaks: dict[int, float] = field(default_factory=dict)  # each video's best seed score
    results: dict[tuple[int, Moment | None], Result] = field(default_factory=dict)


@dataclass
class Result:
    """One result: an image, or a moment (``start``..``end`` seconds) of a video."""

    id: int  # the asset id: an image, or the video a moment belongs to
    unit_id: int  # the unit whose vector matched best (its thumbnail shows the hit)
    kind: str
    path: str
    score: float
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None
    best_time: float | None = None
    width: int | None = None
    height: int | None = None
    steps: list[dict[str, Any]] | None = None  # a sequence query's moments, one per step
    relevance: float | None = None  # calibrated 0..1 (search/relevance.py); None: not measured
    matched: dict[str, Any] = field(default_factory=dict)  # ranking name -> where it found this
    indexed_at: datetime | None = None  # for sort=newest
    text_matches: list[dict[str, Any]] = field(default_factory=list)  # where its text was found (OCR)


@dataclass
class Page:
    results: list[Result]
    next_offset: int | None  # where the next page starts; None on the last page
    took_ms: float


class SearchEngine:
    """Runs searches over one library.

    ``embedder`` (the library's model) is needed for queries with text or an uploaded image;
    ``searcher`` decides how the index is searched (default: at once); ``index`` holds the served
    snapshot (default: a new holder opening the library's index).
    """

    def __init__(
        self,
        library: Library,
        settings: Settings,
        embedder: QueryEmbedder | None = None,
        searcher: IndexSearcher | None = None,
        index: IndexHolder | None = None,
    ) -> None:
        self.library = library
        self.settings = settings
        self.embedder = embedder
        self.searcher: IndexSearcher = searcher or DirectSearch()
        self.index = index or IndexHolder(library)
        self.segments = reads.SegmentCache()

    @property
    def snapshot(self) -> IndexSnapshot:
        return self.index.current()

    # -- the query vector ------------------------------------------------------------------
    def query_vector(self, q: SearchQuery, image: Image.Image | None = None) -> np.ndarray:
        """The query as one unit vector (D,): the weighted sum of its parts' unit vectors.

        Raises QueryError when nothing is searched for or the parts cancel out, ItemNotFound for
        an example that is not indexed, ModelNotLoaded for text or an image without a model.
        """
        w = q.weights
        parts: list[np.ndarray] = []
        if q.q and q.q.strip():
            parts.append(w.text * self._embedder().text(q.q))
        if q.image_id is not None:
            parts.append(w.image * self._stored_vector(reads.item_unit_ids(self.library, q.image_id)))
        if q.unit_id is not None:
            unit = reads.indexed_unit(self.library, q.unit_id)
            parts.append(w.image * self._stored_vector(np.array([unit.id], dtype=np.int64)))
        if image is not None:
            parts.append(w.image * self._embedder().image(image))
        if not parts:
            raise QueryError("nothing to search for: give a text query, an image, or an item id")
        if q.negative and q.negative.strip():
            parts.append(-w.negative * self._embedder().text(q.negative))
        vec = np.sum(parts, axis=0)
        norm = float(np.linalg.norm(vec))
        if norm < 1e-6:
            raise QueryError("the query terms cancel out: adjust the weights")
        return (vec / norm).astype(np.float32)

    def _embedder(self) -> QueryEmbedder:
        if self.embedder is None:
            raise ModelNotLoaded("the library has no model yet: index something first")
        return self.embedder

    def _stored_vector(self, unit_ids: np.ndarray) -> np.ndarray:
        """The mean of stored unit vectors, as a unit vector (an item: a video's mean segment)."""
        index = self.snapshot.index
        present = np.unique(unit_ids[index.contains(unit_ids)])
        if not len(present):
            raise reads.ItemNotFound("the example is not in the index yet (it was indexed moments ago?)")
        vec = index.vectors(present).mean(axis=0)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    # -- search ------------------------------------------------------------------------------
    def resolve_mode(self, q: SearchQuery) -> Mode:
        """The query's mode, or the default: hybrid when the query has words and the library has
        catalogue text, else vector (a library without text searches as it always did)."""
        terms = fulltext.query_terms(q.q)
        if q.mode == Mode.KEYWORD and not terms:
            raise QueryError("keyword search needs words in `q`")
        if q.then and q.mode not in (None, Mode.VECTOR):
            raise QueryError("sequence queries (`then`) search by vector only: leave `mode` out")
        if q.mode is not None:
            return q.mode
        if not terms or q.then:
            return Mode.VECTOR
        with self.library.Session() as s:
            return Mode.HYBRID if fulltext.has_text(s) else Mode.VECTOR

    def search(
        self,
        q: SearchQuery,
        *,
        image: Image.Image | None = None,
        exclude_items: tuple[int, ...] = (),
        offset: int | None = None,
    ) -> Page:
        """One page of results, from ``offset`` (default: the query's own offset).

        ``image`` is an uploaded example; ``exclude_items`` are further items never returned. An
        example never comes back as its own result: the ``image_id`` item, the ``unit_id`` unit.
        """
        started = time.perf_counter()
        offset = q.offset if offset is None else offset
        mode = self.resolve_mode(q)
        if mode == Mode.KEYWORD and (image is not None or q.image_id is not None or q.unit_id is not None):
            raise QueryError("keyword search takes words only: use hybrid or vector for an example image")
        want = offset + q.k + 1 if q.sort == Sort.RELEVANCE else RELEVANT_MAX
        # The words read in pictures are looked up while the query is encoded (the text encoder
        # and SQLite / the PostgreSQL driver each release the GIL): the vector ranking fuses them.
        # As deep as the vector ranking reads them (_ranked): hybrid always FUSION_DEPTH.
        depth = max(want, FUSION_DEPTH) if mode == Mode.VECTOR else FUSION_DEPTH
        text_lookup = (
            _TEXT_POOL.submit(text_hits_of, self.library, q.q, depth)
            if mode != Mode.KEYWORD and not q.then and q.q and q.q.strip() and self.index.has_ocr_text()
            else None
        )
        try:
            vector = None if mode == Mode.KEYWORD else self.query_vector(q, image)
        except BaseException:
            if text_lookup is not None:
                text_lookup.cancel()  # the query's own error is the one to report
            raise
        text_hits = text_lookup.result() if text_lookup is not None else []
        calibration = None if vector is None else self._calibration(vector)
        cut = q.relevant_only or q.sort != Sort.RELEVANCE
        if q.then:
            assert vector is not None
            results, more = self._sequences(vector, q, offset, exclude_items)
        elif mode == Mode.VECTOR:
            assert vector is not None
            floor = calibration.cutoff if cut and calibration is not None else None
            results, more = self._ranked(vector, q, want, exclude_items, floor, calibration, text_hits)
            _vector_ranks(results)
        else:
            results = self._fused(q, mode, vector, calibration, exclude_items, cut, text_hits)
            more = False
        if cut:
            results = [r for r in results if r.relevance is not None and r.relevance >= RELEVANT]
        results = _sorted(results, q.sort)
        page = results[offset : offset + q.k]
        if mode != Mode.VECTOR:
            self._explain(page, fulltext.query_terms(q.q))
        next_offset = offset + q.k if more or len(results) > offset + q.k else None
        return Page(page, next_offset, (time.perf_counter() - started) * 1000)

    def _calibration(self, vector: np.ndarray) -> Calibration | None:
        background = self.index.background()
        return Calibration.of(background @ vector) if len(background) else None

    def _conditions(self, q: SearchQuery) -> list[Any]:
        conditions = build_conditions(q.filters)
        if q.media != Media.ALL:
            conditions.append(Asset.kind == q.media.value)
        return conditions

    def _fused(
        self,
        q: SearchQuery,
        mode: Mode,
        vector: np.ndarray | None,
        calibration: Calibration | None,
        exclude_items: tuple[int, ...],
        cut: bool,
        text_hits: list[TextHit],
    ) -> list[Result]:
        """Hybrid and keyword searches: the rankings fused by rank (search/fusion.py), an exact
        SKU first; each result says where each ranking found it (``matched``). ``text_hits``:
        the query's words read in pictures (``text_hits`` of search/text_ranking.py)."""
        terms = fulltext.query_terms(q.q)
        skip = set(exclude_items) | ({q.image_id} if q.image_id is not None else set())
        conditions = self._conditions(q)
        # The keyword side runs on its own thread while FAISS searches here: both release the GIL
        # (SQLite / the PostgreSQL driver while the query runs, FAISS while it scans).
        text_side = _TEXT_POOL.submit(self._keyword_side, q, terms, conditions, skip)
        vector_results: list[Result] = []
        try:
            if vector is not None:
                floor = calibration.cutoff if cut and calibration is not None else None
                vector_results, _ = self._ranked(
                    vector, q, FUSION_DEPTH, exclude_items, floor, calibration, text_hits
                )
        finally:
            keyword, skus = text_side.result()
        complete = {i for i, _, every in keyword if every}
        by_asset: dict[int, list[Result]] = {}
        for r in vector_results:
            by_asset.setdefault(r.id, []).append(r)
        keyword_score = {i: score for i, score, _ in keyword}
        fused = rrf({"vector": list(by_asset), "keyword": [i for i, _, _ in keyword]})
        order = skus + [int(f.key) for f in fused if f.key not in skus]  # type: ignore[call-overload]
        ranks = {int(f.key): f for f in fused}  # type: ignore[call-overload]
        others = self._keyword_only([i for i in order if i not in by_asset], vector, calibration, q)
        results: list[Result] = []
        for asset_id in order:
            found = by_asset.get(asset_id) or others.get(asset_id)
            if not found:
                continue  # not indexed any more, or under min_score
            f = ranks.get(asset_id)
            for r in found:
                if f is not None:
                    r.matched["fused"] = round(f.score, SCORE_DECIMALS)
                    if "vector" in f.ranks:
                        r.matched["vector"] = {"rank": f.ranks["vector"], "score": r.score}
                    if "keyword" in f.ranks:
                        r.matched["keyword"] = {
                            "rank": f.ranks["keyword"],
                            "score": round(keyword_score[asset_id], SCORE_DECIMALS),
                            "all_words": asset_id in complete,
                        }
                text_relevance = (
                    1.0 if asset_id in complete else KEYWORD_PARTIAL if f and "keyword" in f.ranks else 0.0
                )
                if asset_id in skus:
                    r.matched["sku"] = True
                    text_relevance = 1.0
                r.relevance = round(max(r.relevance or 0.0, text_relevance), 4)
                if vector is None and asset_id in keyword_score:
                    r.score = round(keyword_score[asset_id], SCORE_DECIMALS)  # keyword mode: its own score
                results.append(r)
        return results

    def _keyword_side(
        self, q: SearchQuery, terms: list[str], conditions: list[Any], skip: set[int]
    ) -> tuple[list[tuple[int, float, bool]], list[int]]:
        """The keyword ranking (without the ``skip`` items) and the items whose SKU is the query."""
        with self.library.Session() as s:
            keyword = [
                hit
                for hit in fulltext.keyword_ranking(s, terms, conditions, FUSION_DEPTH + len(skip))
                if hit[0] not in skip
            ][:FUSION_DEPTH]
            skus = [i for i in fulltext.exact_sku(s, q.q, conditions) if i not in skip]
        return keyword, skus

    def _keyword_only(
        self,
        asset_ids: list[int],
        vector: np.ndarray | None,
        calibration: Calibration | None,
        q: SearchQuery,
    ) -> dict[int, list[Result]]:
        """Results for items that the vector ranking did not return: an image as itself, a video
        as a whole; scored by their best stored vector when there is a query vector."""
        assets, units = reads.indexed_items(self.library, asset_ids)
        snapshot = self.snapshot
        found: dict[int, list[Result]] = {}
        for asset_id, asset in assets.items():
            unit_ids = np.array(units.get(asset_id, []), dtype=np.int64)
            if not len(unit_ids):
                continue
            score = 0.0
            unit_id = int(unit_ids[0])
            if vector is not None:
                stored = unit_ids[snapshot.index.contains(unit_ids)]
                if len(stored):
                    scores = snapshot.index.vectors(stored) @ vector
                    best = int(np.argmax(scores))
                    score, unit_id = float(scores[best]), int(stored[best])
                if q.min_score is not None and round(score, SCORE_DECIMALS) < q.min_score:
                    continue
            r = _result(asset, unit_id, score)
            if calibration is not None:
                r.relevance = round(calibration.relevance(r.score), 4)
            found[asset_id] = [r]
        return found

    def _explain(self, page: list[Result], terms: list[str]) -> None:
        """The keyword ranking's field and highlighted snippet for each result of the page."""
        ids = [r.id for r in page if "keyword" in r.matched]
        if not ids:
            return
        with self.library.Session() as s:
            found = fulltext.matches(s, terms, ids)
        for r in page:
            m = found.get(r.id)
            if m is not None and "keyword" in r.matched:
                r.matched["keyword"] = {**r.matched["keyword"], "field": m.field, "snippet": m.snippet}

    def _ranked(
        self,
        vector: np.ndarray,
        q: SearchQuery,
        want: int,
        exclude_items: tuple[int, ...],
        floor: float | None = None,
        calibration: Calibration | None = None,
        text_hits: list[TextHit] | None = None,
    ) -> tuple[list[Result], bool]:
        """Vector results ranked from the top down to at least ``want`` (and whether more exist),
        none scoring under ``q.min_score`` or ``floor`` (the relevance cutoff, as a cosine).

        Video hits merge into moments, so the number of hits needed is not known in advance:
        read hits until they reach as many shots as the page needs results (where the shards
        list segments; else as many hits as searched), group, and read on while the page is
        not full and hits remain, searching again, deeper, when the ranking runs out.
        """
        snapshot = self.snapshot
        allowed = self._allowed_units(q)
        min_score = q.min_score
        if floor is not None:
            min_score = (
                max(min_score, round(floor, SCORE_DECIMALS))
                if min_score is not None
                else round(floor, SCORE_DECIMALS)
            )
        # Left out after the search rather than by the id selector: excluding a few ids from
        # millions would make every "more like this" a filtered search over all the others.
        skip_items = set(exclude_items) | ({q.image_id} if q.image_id is not None else set())
        skip_units = {q.unit_id} if q.unit_id is not None else set()
        if allowed is not None and len(allowed) == 0:
            return [], False
        available = len(snapshot.index) if allowed is None else len(allowed)
        asked = want
        # Read once, at the depth a fused ranking has (the limit decides ties, so the same on
        # every page): fused with the text read in pictures by rank (_fuse_rankings), the vector
        # ranking needs the same depth on every page, as hybrid's does, or pages disagree.
        if text_hits is None:  # not looked up by the caller
            text_hits = (
                text_hits_of(self.library, q.q, max(want, FUSION_DEPTH))
                if q.q and q.q.strip() and self.index.has_ocr_text()
                else []
            )
        if text_hits:
            want = max(want, FUSION_DEPTH)
        # Images: one hit each. Videos: later hits come from the first search's spare candidates,
        # then from searches that leave out what is taken (below). Not more up front from an
        # approximate base: it re-ranks k_factor rows for every hit asked for (40 at 5M), and
        # its spare candidates hold the next hits anyway. An exact one has none to spare, and
        # a few more hits cost it nothing.
        fetch = min(available, want if not snapshot.index.info.exact else want + want // 4)
        made = _Made()  # what _group made of the hits so far: each call sees them again, and more
        typical = calibration.typical if calibration is not None else None
        hits: list[Hit] = []
        results: list[Result] = []
        assets: dict[int, Asset] = {}
        seen: list[np.ndarray] = []  # ids already returned, or inside a moment taken
        left_out: set[int] = set()  # the runs (by seed) whose segments `seen` holds
        # The ranking so far, best first: what the last search returned, hits taken `used` of it.
        ranked_scores, ranked_ids, used, short = np.zeros(0, np.float32), np.zeros(0, np.int64), 0, False
        while True:
            if used >= len(ranked_ids):
                excluded = np.concatenate(seen) if seen else None
                # `spare`: the candidates an approximate index re-ranked past `fetch` come too,
                # the next hits of this ranking without another search (ids -1 where none).
                scores, ids = self.searcher.search(
                    snapshot.index, vector[None, :], fetch, allowed, excluded, spare=True
                )
                valid = ids[0] >= 0
                ranked_scores, ranked_ids, used = scores[0][valid], ids[0][valid], 0
                short = len(ranked_ids) < fetch  # nothing past these
                seen.append(ranked_ids)
            # The next hits of the ranking, past those inside a moment already taken (they add
            # nothing, not even their catalogue rows), as many as the page's missing results
            # need, counted in shots rather than hits: a scene that matches sends most of its
            # seconds, which one moment takes together.
            taken_ids = [run.members for run in made.runs.values() if run.members is not None]
            ahead = ranked_ids[used:]
            new = ~np.isin(ahead, np.concatenate(taken_ids)) if taken_ids else np.ones(len(ahead), bool)
            fresh = np.flatnonzero(new)
            count, listed = self._next_hits(snapshot.index, ahead[fresh], fetch, want - len(results), results)
            picked = fresh[:count]
            reach = int(picked[-1]) + 1 if len(picked) < len(fresh) else len(ahead)
            chunk_ids, chunk_scores = ahead[picked], ranked_scores[used:][picked]
            used += reach
            if listed is None:
                found, more_assets = reads.read_hits(self.library, chunk_ids, chunk_scores, min_score)
            else:
                found, more_assets = reads.read_listed_hits(
                    self.library, chunk_ids, chunk_scores, min_score, listed
                )
            hits += [h for h in found if h.asset_id not in skip_items and h.unit_id not in skip_units]
            assets |= more_assets
            results = self._group(
                hits, assets, vector, made, skip_units, typical, floor, want, snapshot.index
            )
            exhausted = (used >= len(ranked_ids) and short) or (
                min_score is not None
                and len(ranked_scores) > 0
                and round(float(ranked_scores[min(used, len(ranked_scores)) - 1]), SCORE_DECIMALS) < min_score
            )
            if len(results) >= want or exhausted:
                results = self._fuse_rankings(
                    q, vector, results, allowed, skip_items, skip_units, want, text_hits
                )
                if calibration is not None:
                    for r in results:
                        # Words read in the picture are as good a sign as words in its title.
                        r.relevance = 1.0 if r.text_matches else round(calibration.relevance(r.score), 4)
                return results, len(results) >= asked
            # A later search leaves out what was returned and the segments of the moments taken,
            # so it reaches new scenes rather than more seconds of the ones found (hits of one
            # scene are one moment). The next depth follows the yield so far: hits per result.
            for unit_id, run in made.runs.items():
                if run.members is not None and unit_id not in left_out:
                    left_out.add(unit_id)
                    seen.append(run.members)
            per_result = len(hits) / max(len(results), 1)
            fetch = min(available, max(8, math.ceil(1.25 * (want - len(results)) * per_result)))

    def _fuse_rankings(
        self,
        q: SearchQuery,
        vector: np.ndarray,
        results: list[Result],
        allowed: np.ndarray | None,
        skip_items: set[int],
        skip_units: set[int],
        want: int,
        text_hits: list[TextHit],
    ) -> list[Result]:
        """A text query's vector ranking fused (RRF, search/fusion.py) with the other rankings of its
        words: the text read in pictures (search/text_ranking.py), whose hits are ``text_hits``."""
        if not (q.q and q.q.strip() and text_hits):
            return results
        return fuse_ocr(
            self.library,
            self.snapshot.index,
            vector,
            q.q,
            results,
            _result,
            allowed=allowed,
            skip_items=skip_items,
            skip_units=skip_units,
            want=want,
            hits=text_hits,
        )

    def _next_hits(
        self, index: VectorIndex, ahead: np.ndarray, fetch: int, need: int, results: list[Result]
    ) -> tuple[int, SegmentsOf | None]:
        """How many of the ranking's next hits ``ahead`` to read for ``need`` more results, and
        what the shards' lists say of those (None where no shard lists segments: then ``fetch``
        hits, as many as were searched). Looked up a span at a time, ``_lookup_span(need)`` first
        and twice as far while that is not enough: an approximate base spares hundreds."""
        store, row_map = index.store, index.row_map
        if store is None or row_map is None or not store.lists_segments(row_map):
            return min(fetch, len(ahead)), None
        listed = store.segments_of_ids(ahead[: self._lookup_span(need)], row_map)
        while True:
            count = self._hits_to_read(listed, need, results)
            if count < len(listed.shot) or len(listed.shot) == len(ahead):
                return count, listed.head(count)
            span = min(len(ahead), 2 * len(listed.shot))
            listed = listed.then(store.segments_of_ids(ahead[len(listed.shot) : span], row_map))

    @staticmethod
    def _lookup_span(need: int) -> int:
        """Hits looked up in the shards at first for ``need`` more results (:data:`READ_SPAN`)."""
        return READ_SPAN * need

    def _hits_to_read(self, listed: SegmentsOf, need: int, results: list[Result]) -> int:
        """How many of the ranking's next hits (``listed``: their segments) to read for ``need``
        more results (search/moments.py ``hits_to_read``)."""
        taken = Counter(r.id for r in results if r.start is not None)
        return hits_to_read(
            listed.segments["asset"], listed.shot, need, self.settings.moments_per_video, taken
        )

    def _allowed_units(self, q: SearchQuery) -> np.ndarray | None:
        """The unit ids the filters allow, or None when nothing is filtered."""
        conditions = self._conditions(q)
        if not conditions:
            return None
        return reads.allowed_units(self.library, conditions)

    def _group(
        self,
        hits: list[Hit],
        assets: dict[int, Asset],
        vector: np.ndarray,
        made: _Made,
        skip_units: set[int],
        typical: float | None,
        floor: float | None,
        want: int,
        index: VectorIndex,
    ) -> list[Result]:
        """The first ``want`` results from the hits: images as they are, and each video hit as the
        moment fitted to the query around it (search/moments.py ``fit_hits``), at most
        ``moments_per_video`` a video. ``made`` keeps the moments, seeds and results across the
        calls of one search (``hits`` only grows between them)."""
        if typical is None:
            typical = self._typical(vector)
        seeds, peaks = made.seeds, made.peaks
        # Each asset's kind read once, not once a hit (an ORM attribute read costs ~1 µs, and a
        # page of moments has ~100 hits of ~20 videos).
        videos = {a for a in {h.asset_id for h in hits[len(seeds) :]} if assets[a].kind == Kind.VIDEO}
        for h in hits[len(seeds) :]:
            video = h.t_start is not None and h.asset_id in videos
            seeds.append(Seed(h.asset_id, h.unit_id, h.score, h.t_start or 0.0, video))
            if video and (h.asset_id not in peaks or h.score > peaks[h.asset_id]):
                peaks[h.asset_id] = h.score
        # No background sample means an empty index, which has no hits (the peak stands in).
        bands = {a: band(peak, peak if typical is None else typical, floor) for a, peak in peaks.items()}
        skip = np.array(sorted(skip_units), dtype=np.int64)

        def read(wanted: list[Read]) -> list[Rows]:
            return self._read_segments(index, wanted, vector, skip)

        taken = fit_hits(
            seeds,
            want=want,
            per_video=self.settings.moments_per_video,
            bands=bands,
            read=read,
            grown=made.runs,
            grow=lambda runs: grow_in_windows(runs, index, vector, skip, read),
        )
        results = []
        for seed, m in taken:
            # By value: equal moments make equal results, where an id() could be a new moment's
            # once a run grown again (its band changed) has let the old one go.
            key = (seed.unit_id, m)
            r = made.results.get(key)
            if r is None:
                r = made.results[key] = (
                    _result(assets[seed.asset_id], seed.unit_id, seed.score)
                    if m is None
                    else _result(
                        assets[seed.asset_id],
                        m.unit_id,
                        m.score,
                        start=m.start,
                        end=m.end,
                        best_time=m.best_time,
                    )
                )
            results.append(r)
        results.sort(key=lambda r: (-r.score, r.id, r.start or 0.0))
        return results

    def _read_segments(
        self, index: VectorIndex, wanted: list[Read], vector: np.ndarray, skip: np.ndarray
    ) -> list[Rows]:
        """Moments' reads (search/moments.py) from the catalogue, for videos of shards written
        before shards listed segments (the rest are read from the shards, search/windows.py):
        the segments next to a segment, those ``index`` (the search's snapshot) holds, less
        ``skip``, scored against ``vector``; one SQL round trip for all, one scoring call."""
        tables = reads.segments_near(self.library, wanted)
        every = np.concatenate([table.unit_id for table, _ in tables]) if tables else np.zeros(0, np.int64)
        scorable = index.contains(every)
        if len(skip):
            scorable &= ~np.isin(every, skip)
        wanted_ids = every[scorable]
        scored = index.scores(wanted_ids, vector[None, :])[:, 0] if len(wanted_ids) else np.zeros(0)
        out, at, taken = [], 0, 0
        for r, (table, complete) in zip(wanted, tables, strict=True):
            n = len(table)
            far = (n - 1 if r.after else 0) if n else None
            edge = None if far is None else (float(table.t_start[far]), int(table.unit_id[far]))
            ok = scorable[at : at + n]
            kept = int(ok.sum())
            scores, taken = scored[taken : taken + kept], taken + kept
            out.append(Rows(table.take(ok), np.asarray(scores, dtype=np.float64), edge, complete))
            at += n
        return out

    def _typical(self, vector: np.ndarray) -> float | None:
        """The query's median score over the library's background sample (None when empty)."""
        background = self.index.background()
        return float(np.median(background @ vector)) if len(background) else None

    def _scored_segments(self, asset: Asset, vectors: np.ndarray) -> tuple[SegmentTable, np.ndarray]:
        """A video's segments in time order and their scores (n, nq) against each of ``vectors``
        (nq, D). Segments missing from the served index are left out."""
        table = self.segments.get(self.library, asset.id, asset.indexed_at)
        index = self.snapshot.index
        table = table.take(index.contains(table.unit_id))
        if not len(table):
            return table, np.zeros((0, len(vectors)), dtype=np.float32)
        return table, index.scores(table.unit_id, vectors)

    # -- sequence queries ------------------------------------------------------------------------
    def _sequences(
        self, vector: np.ndarray, q: SearchQuery, offset: int, exclude_items: tuple[int, ...]
    ) -> tuple[list[Result], bool]:
        """ "A then B within N s": in videos among the top units of every step, the moments of each
        step chained in order (search/moments.py ``sequences``), scored by their weakest step."""
        steps = np.stack([vector, *(self._embedder().text(t) for t in q.then)])
        video_q = q.model_copy(update={"media": Media.VIDEO})
        allowed = self._allowed_units(video_q)
        snapshot = self.snapshot
        if allowed is not None and len(allowed) == 0:
            return [], False
        available = len(snapshot.index) if allowed is None else len(allowed)
        fetch = min(available, SEQUENCE_CANDIDATES)
        candidates: dict[int, Asset] = {}
        for step in steps:
            scores, ids = self.searcher.search(snapshot.index, step[None, :], fetch, allowed)
            hits, assets = reads.read_hits(self.library, ids[0], scores[0], None)
            for h in hits:
                if assets[h.asset_id].kind == Kind.VIDEO and h.asset_id not in exclude_items:
                    candidates.setdefault(h.asset_id, assets[h.asset_id])
        calibrations = [self._calibration(step) for step in steps]
        typicals = [None if c is None else c.typical for c in calibrations]
        found: list[tuple[Asset, SequenceMatch]] = []
        for asset_id, asset in candidates.items():
            table, scores = self._scored_segments(asset, steps)
            per_step = [
                fit_table(
                    asset_id, table, scores[:, j], per_video=self.settings.moments_per_video, typical=typical
                )
                for j, typical in enumerate(typicals)
            ]
            chains = sequences(per_step, q.within)
            found += [(asset, c) for c in chains[: self.settings.moments_per_video]]
        found.sort(key=lambda f: (-f[1].score, f[0].id, f[1].start))
        if q.min_score is not None:
            found = [f for f in found if round(f[1].score, SCORE_DECIMALS) >= q.min_score]
        results = [
            _result(
                asset,
                chain.steps[0].unit_id,
                chain.score,
                start=chain.start,
                end=chain.end,
                best_time=chain.steps[0].best_time,
                steps=[
                    {
                        "start": m.start,
                        "end": m.end,
                        "best_time": m.best_time,
                        "score": round(m.score, SCORE_DECIMALS),
                        "unit_id": m.unit_id,
                    }
                    for m in chain.steps
                ],
            )
            for asset, chain in found
        ]
        judged = [c for c in calibrations if c is not None]  # none only for an empty library
        if len(judged) == len(steps):
            # Every step must match: a chain is as relevant as its least relevant step, each step
            # judged against its own query's background (relevant_only keeps a chain whose every
            # step would pass alone).
            for r, (_, chain) in zip(results, found, strict=True):
                r.relevance = round(
                    min(c.relevance(m.score) for c, m in zip(judged, chain.steps, strict=True)), 4
                )
        return results, len(results) > offset + q.k


def _result(asset: Asset, unit_id: int, score: float, **extra: Any) -> Result:
    metadata = {
        k: v
        for k, v in {
            "sku": asset.sku,
            "description": asset.description,
            "price": asset.price,
            "currency": asset.currency,
            "category": asset.category,
            "url": asset.url,
            "duration": asset.duration,
            **(asset.extra or {}),
        }.items()
        if v is not None
    }
    return Result(
        id=asset.id,
        unit_id=unit_id,
        kind=asset.kind,
        path=asset.path,
        score=round(score, SCORE_DECIMALS),
        title=asset.title,
        metadata=metadata,
        width=asset.width,
        height=asset.height,
        indexed_at=asset.indexed_at,
        **extra,
    )


def _vector_ranks(results: list[Result]) -> None:
    """``matched.vector``: each result's item rank (from 1) in the vector ranking, and its score."""
    ranks: dict[int, int] = {}
    for r in results:
        rank = ranks.setdefault(r.id, len(ranks) + 1)
        r.matched["vector"] = {"rank": rank, "score": r.score}


def _sorted(results: list[Result], sort: Sort) -> list[Result]:
    """``results`` in the asked order; ties (and items without a price or date, last) keep the
    relevance order, so every page of one query cuts the same list."""
    if sort == Sort.PRICE_ASC:
        return sorted(results, key=lambda r: (_price(r) is None, _price(r) or 0.0))
    if sort == Sort.PRICE_DESC:
        return sorted(results, key=lambda r: (_price(r) is None, -(_price(r) or 0.0)))
    if sort == Sort.NEWEST:
        return sorted(
            results,
            key=lambda r: (r.indexed_at is None, -(r.indexed_at.timestamp() if r.indexed_at else 0.0)),
        )
    return results


def _price(r: Result) -> float | None:
    price = r.metadata.get("price")
    return float(price) if isinstance(price, (int, float)) else None
