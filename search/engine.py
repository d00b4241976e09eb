"""The read path: a query (text, example item, uploaded image, or a mix) -> ranked items and moments.

Shared by ``glimpse search`` and the HTTP API. The index is held as an immutable snapshot that is
swapped whole when the indexer publishes a new version, so a search never sees half an update.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, select

from glimpse.core.catalogue import INDEXED, VIDEO, Asset, IndexRun, Unit
from glimpse.core.encoder import Encoder
from glimpse.core.index import VectorIndex
from glimpse.core.library import IndexSnapshot, Library
from glimpse.core.settings import Settings
from glimpse.search.filters import build_conditions

Media = Literal["all", "image", "video"]
# Hits closer than this (seconds) in the same video belong to one moment.
MOMENT_GAP = 2.0
# A neighbouring segment joins a moment only when it scores within this much (cosine) of the
# moment's best hit; weaker neighbours are separate, lower-ranked moments.
MOMENT_SCORE_MARGIN = 0.05
# Scores are reported with this many decimals, and `min_score` compares the reported value: a
# client that passes a score it was shown must get that result back, whichever way it rounded.
SCORE_DECIMALS = 6


class QueryError(ValueError):
    """The query cannot be run as given (nothing to search for, bad weights...)."""


class ItemNotFound(LookupError):
    pass


@dataclass
class Query:
    text: str | None = None
    negative: str | None = None
    image_id: int | None = None
    image_vector: np.ndarray | None = None  # an uploaded image, already embedded
    text_weight: float = 1.0
    image_weight: float = 1.0
    negative_weight: float = 0.5
    media: Media = "all"
    filters: dict[str, Any] | None = None
    k: int = 20
    offset: int = 0
    min_score: float | None = None
    exclude_ids: tuple[int, ...] = ()


@dataclass
class Result:
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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Page:
    results: list[Result]
    next_offset: int | None
    took_ms: float


@dataclass(frozen=True)
class _Hit:
    unit_id: int
    asset_id: int
    score: float
    t_start: float | None
    t_end: float | None
    t_best: float | None


class SearchEngine:
    def __init__(self, library: Library, encoder: Encoder, settings: Settings) -> None:
        self.library = library
        self.encoder = encoder
        self.settings = settings
        self._snapshot = library.open_index()
        self._swap_lock = threading.Lock()
        self._checked_at = 0.0

    # -- index snapshots -----------------------------------------------------------------
    @property
    def snapshot(self) -> IndexSnapshot:
        self.refresh()
        return self._snapshot

    def refresh(self, min_interval: float = 1.0) -> bool:
        """Swap in a newer index if the indexer published one; cheap (one small file read)."""
        now = time.monotonic()
        if now - self._checked_at < min_interval:
            return False
        self._checked_at = now
        if self.library.index_version() == self._snapshot.version:
            return False
        with self._swap_lock:
            if self.library.index_version() == self._snapshot.version:
                return False
            # No repair here: the indexer that published this version owns the lock and the
            # consistency; unknown ids are dropped at fetch time anyway.
            self._snapshot = self.library.open_index(repair=False)
            return True

    # -- query vectors -------------------------------------------------------------------
    def embed_query(self, q: Query) -> np.ndarray:
        parts: list[np.ndarray] = []
        if q.text and q.text.strip():
            parts.append(q.text_weight * self.encode_text(q.text))
        if q.image_id is not None:
            parts.append(q.image_weight * self.item_vector(q.image_id))
        if q.image_vector is not None:
            parts.append(q.image_weight * np.asarray(q.image_vector, dtype=np.float32))
        if not parts:
            raise QueryError("nothing to search for: give a text query, an image, or an item id")
        if q.negative and q.negative.strip():
            parts.append(-q.negative_weight * self.encode_text(q.negative))
        vec = np.sum(parts, axis=0)
        norm = float(np.linalg.norm(vec))
        if norm < 1e-6:
            raise QueryError("the query terms cancel out: adjust the weights")
        return (vec / norm).astype(np.float32)

    def encode_text(self, text: str) -> np.ndarray:
        """One query text as a unit vector (the API overrides this to micro-batch concurrent queries)."""
        return self.encoder.encode_texts([text])[0]

    def search_index(
        self, index: VectorIndex, vector: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) of one query vector, shaped (1, k) (the API batches these too)."""
        return index.search(vector[None, :], k, allowed)

    def item_vector(self, asset_id: int) -> np.ndarray:
        """An indexed item as a query: its vector (a video: the mean of its segments)."""
        with self.library.Session() as s:
            unit_ids = list(
                s.scalars(select(Unit.id).join(Asset).where(Asset.id == asset_id, Asset.status == INDEXED))
            )
        indexed = set(self.snapshot.index.ids().tolist()) if unit_ids else set()
        unit_ids = [u for u in unit_ids if u in indexed]
        if not unit_ids:
            raise ItemNotFound(f"no indexed item with id {asset_id}")
        vec = self.snapshot.index.vectors(np.array(unit_ids, dtype=np.int64)).mean(axis=0)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    # -- search --------------------------------------------------------------------------
    def search(self, q: Query, vector: np.ndarray | None = None) -> Page:
        """One page of results; ``vector`` when the caller already embedded the query."""
        started = time.perf_counter()
        if vector is None:
            vector = self.embed_query(q)
        results, more = self._ranked(vector, q)
        page = results[q.offset : q.offset + q.k]
        next_offset = q.offset + q.k if more or len(results) > q.offset + q.k else None
        return Page(page, next_offset, (time.perf_counter() - started) * 1000)

    def _ranked(self, vector: np.ndarray, q: Query) -> tuple[list[Result], bool]:
        """Results ranked from the top down to at least offset + k + 1 (to know if more exist).

        Video hits merge into moments, so the number of hits needed is not known in advance:
        fetch, group, and fetch twice as many while the page is not full and hits remain.
        """
        snapshot = self.snapshot
        allowed = self._allowed_units(q)
        if allowed is not None and len(allowed) == 0:
            return [], False
        available = len(snapshot.index) if allowed is None else len(allowed)
        want = q.offset + q.k + 1
        fetch = min(available, max(want * 2, 32))
        while True:
            scores, ids = self.search_index(snapshot.index, vector, fetch, allowed)
            hits, assets = self._fetch_hits(ids[0], scores[0], q.min_score)
            results = self._group(hits, assets)
            exhausted = fetch >= available or (
                q.min_score is not None
                and len(scores[0])
                and round(float(scores[0][-1]), SCORE_DECIMALS) < q.min_score
            )
            if len(results) >= want or exhausted:
                return results, len(results) >= want
            fetch = min(available, fetch * 2)

    def _allowed_units(self, q: Query) -> np.ndarray | None:
        conditions = build_conditions(q.filters)
        if q.media != "all":
            conditions.append(Asset.kind == q.media)
        if q.exclude_ids:
            conditions.append(Asset.id.not_in(q.exclude_ids))
        if not conditions:
            return None
        stmt = select(Unit.id).join(Asset).where(Asset.status == INDEXED, *conditions)
        with self.library.Session() as s:
            return np.fromiter(s.scalars(stmt), dtype=np.int64)

    def _fetch_hits(
        self, ids: np.ndarray, scores: np.ndarray, min_score: float | None
    ) -> tuple[list[_Hit], dict[int, Asset]]:
        """The hits whose asset is indexed, and those assets, read in one session: a consistent
        view even while an indexer deletes assets."""
        pairs = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]
        if min_score is not None:
            pairs = [(i, s) for i, s in pairs if round(s, SCORE_DECIMALS) >= min_score]
        if not pairs:
            return [], {}
        # Two primary-key lookups, and the status checked here, not in SQL: given `status = ?`
        # next to `id IN (...)` of more than a few ids, SQLite (without ANALYZE statistics)
        # prefers ix_assets_status_kind and walks every indexed asset: ~0.1 s at a million.
        with self.library.Session() as s:
            rows = {
                r.id: r
                for r in s.execute(
                    select(Unit.id, Unit.asset_id, Unit.t_start, Unit.t_end, Unit.t_best).where(
                        Unit.id.in_([i for i, _ in pairs])
                    )
                )
            }
            assets = {
                a.id: a
                for a in s.scalars(select(Asset).where(Asset.id.in_({r.asset_id for r in rows.values()})))
                if a.status == INDEXED
            }
        rows = {i: r for i, r in rows.items() if r.asset_id in assets}
        # An id the catalogue no longer knows (removed since this index was built) is dropped.
        hits = [
            _Hit(i, rows[i].asset_id, s, rows[i].t_start, rows[i].t_end, rows[i].t_best)
            for i, s in pairs
            if i in rows
        ]
        return hits, assets

    def _group(self, hits: list[_Hit], assets: dict[int, Asset]) -> list[Result]:
        from glimpse.search.moments import merge_moments

        video_hits = [h for h in hits if assets[h.asset_id].kind == VIDEO]
        moments = merge_moments(
            video_hits, gap=MOMENT_GAP, per_video=self.settings.moments_per_video, margin=MOMENT_SCORE_MARGIN
        )
        seen_images: set[int] = set()
        results: list[Result] = []
        for h in hits:
            asset = assets[h.asset_id]
            if asset.kind != VIDEO and h.asset_id not in seen_images:
                seen_images.add(h.asset_id)
                results.append(_result(asset, h.unit_id, h.score))
        for m in moments:
            asset = assets[m.asset_id]
            results.append(
                _result(asset, m.unit_id, m.score, start=m.start, end=m.end, best_time=m.best_time)
            )
        results.sort(key=lambda r: (-r.score, r.id, r.start or 0.0))
        return results

    # -- items ---------------------------------------------------------------------------
    def item(self, asset_id: int) -> tuple[Asset, list[Unit]]:
        with self.library.Session() as s:
            asset = s.get(Asset, asset_id)
            if asset is None:
                raise ItemNotFound(f"no item with id {asset_id}")
            units = list(
                s.scalars(select(Unit).where(Unit.asset_id == asset_id).order_by(Unit.t_start, Unit.id))
            )
            return asset, units

    def unit(self, unit_id: int) -> Unit:
        with self.library.Session() as s:
            unit = s.get(Unit, unit_id)
            if unit is None:
                raise ItemNotFound(f"no unit with id {unit_id}")
            return unit

    def similar(self, asset_id: int, k: int = 20, offset: int = 0, **kw: Any) -> Page:
        """More like this: the item's own vector as the query, the item itself left out."""
        return self.search(Query(image_id=asset_id, k=k, offset=offset, exclude_ids=(asset_id,), **kw))

    def stats(self) -> dict[str, Any]:
        snap = self.snapshot
        with self.library.Session() as s:
            by_kind = dict(
                s.execute(
                    select(Asset.kind, func.count()).where(Asset.status == INDEXED).group_by(Asset.kind)
                ).all()
            )
            failed = s.scalar(select(func.count()).select_from(Asset).where(Asset.status == "failed")) or 0
            last = s.scalar(select(IndexRun).order_by(IndexRun.id.desc()).limit(1))
            categories = list(
                s.scalars(
                    select(Asset.category)
                    .where(Asset.category.is_not(None))
                    .distinct()
                    .order_by(Asset.category)
                )
            )
            price = s.execute(select(func.min(Asset.price), func.max(Asset.price))).one()
        model = self.library.library_model()
        return {
            "items": {"image": by_kind.get("image", 0), "video": by_kind.get("video", 0)},
            "failed": failed,
            "units": len(snap.index),
            "model": {
                "name": model.name,
                "pretrained": model.pretrained,
                "dim": self.library.model_info().dim,
            }
            if model
            else None,
            "index": {"type": "flat-ip (exact)", "size": len(snap.index), "version": snap.version},
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


def _result(asset: Asset, unit_id: int, score: float, **times: float | None) -> Result:
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
        **times,
    )
