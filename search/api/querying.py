"""Turning the three shapes of a search request (JSON body, query string, multipart form) into one
engine query, paging it with opaque cursors, and shaping the results as JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from glimpse.core.catalogue import Asset, Unit
from glimpse.search.api.errors import ApiError
from glimpse.search.api.schemas import (
    OFFSET_MAX,
    FlatFilters,
    FlatWeights,
    ItemOut,
    ResultOut,
    SearchRequest,
    SearchResponse,
    SimilarParams,
    UnitOut,
)
from glimpse.search.engine import Query, Result, SearchEngine
from glimpse.search.filters import build_conditions


@dataclass
class SearchSpec:
    """A validated search in one shape, whatever the request looked like."""

    q: str | None = None
    negative: str | None = None
    image_id: int | None = None
    text_weight: float = 1.0
    image_weight: float = 1.0
    negative_weight: float = 0.5
    media: str = "all"
    filters: dict[str, Any] | None = None
    k: int = 20
    offset: int = 0
    cursor: str | None = None
    min_score: float | None = None
    exclude_ids: tuple[int, ...] = ()
    image_digest: str | None = None  # of an uploaded query image: part of the cursor's identity

    def fingerprint(self) -> str:
        """What identifies the result list (not the page): a cursor is only valid for its query."""
        identity = {
            "q": (self.q or "").strip(),
            "n": (self.negative or "").strip(),
            "i": self.image_id,
            "w": [self.text_weight, self.image_weight, self.negative_weight],
            "m": self.media,
            "f": self.filters,
            "s": self.min_score,
            "x": list(self.exclude_ids),
            "u": self.image_digest,
        }
        raw = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.blake2b(raw, digest_size=8).hexdigest()

    def start(self) -> int:
        """The offset to start at: from the cursor when one was given."""
        if self.cursor is None:
            return self.offset
        if self.offset:
            raise ApiError(422, "invalid_cursor", "give either offset or cursor, not both")
        return decode_cursor(self.cursor, self.fingerprint())

    def validated(self) -> SearchSpec:
        """Check filters and cursor now, so a bad request is a 422 before any embedding work."""
        build_conditions(self.filters)
        self.start()
        return self

    def to_query(self, image_vector: np.ndarray | None = None) -> Query:
        return Query(
            text=self.q,
            negative=self.negative,
            image_id=self.image_id,
            image_vector=image_vector,
            text_weight=self.text_weight,
            image_weight=self.image_weight,
            negative_weight=self.negative_weight,
            media=self.media,  # type: ignore[arg-type]
            filters=self.filters,
            k=self.k,
            offset=self.start(),
            min_score=self.min_score,
            exclude_ids=self.exclude_ids,
        )


def spec_from_body(body: SearchRequest) -> SearchSpec:
    return SearchSpec(
        q=body.q,
        negative=body.negative,
        image_id=body.image_id,
        text_weight=body.weights.text,
        image_weight=body.weights.image,
        negative_weight=body.weights.negative,
        media=body.media,
        filters=body.filters or None,
        k=body.k,
        offset=body.offset,
        cursor=body.cursor,
        min_score=body.min_score,
    ).validated()


def spec_from_flat(params: Any, image_digest: str | None = None) -> SearchSpec:
    """From query-string or form fields (SearchParams, ImageSearchForm, SimilarParams)."""
    return _flat_spec(params, image_digest=image_digest).validated()


def spec_for_similar(item_id: int, params: SimilarParams) -> SearchSpec:
    """More like this: the item's own vector as the query, the item itself left out."""
    return _flat_spec(params, image_id=item_id, exclude_ids=(item_id,)).validated()


def _flat_spec(params: Any, **identity: Any) -> SearchSpec:
    weights = params if isinstance(params, FlatWeights) else FlatWeights()
    return SearchSpec(
        **{
            "q": getattr(params, "q", None),
            "negative": getattr(params, "negative", None),
            "image_id": getattr(params, "image_id", None),
            "text_weight": weights.text_weight,
            "image_weight": weights.image_weight,
            "negative_weight": weights.negative_weight,
            "media": params.media,
            "filters": merge_flat_filters(params),
            "k": params.k,
            "offset": params.offset,
            "cursor": params.cursor,
            "min_score": params.min_score,
            **identity,
        }
    )


def merge_flat_filters(params: FlatFilters) -> dict[str, Any] | None:
    """``filters`` (a JSON object in a string) plus the ``category``/``price_min``/``price_max`` shortcuts."""
    filters: dict[str, Any] = {}
    if params.filters and params.filters.strip():
        try:
            parsed = json.loads(params.filters)
        except json.JSONDecodeError as exc:
            raise ApiError(
                422, "invalid_filter", f"filters is not valid JSON: {exc.msg} (at {exc.pos})"
            ) from None
        if not isinstance(parsed, dict):
            raise ApiError(422, "invalid_filter", "filters must be a JSON object of field -> condition")
        filters = parsed
    if params.category:
        _add_condition(filters, "category", "in", list(params.category))
    if params.price_min is not None:
        _add_condition(filters, "price", "gte", params.price_min)
    if params.price_max is not None:
        _add_condition(filters, "price", "lte", params.price_max)
    return filters or None


def _add_condition(filters: dict[str, Any], name: str, op: str, value: Any) -> None:
    spec = filters.get(name)
    if spec is None:
        filters[name] = {op: value}
        return
    if not isinstance(spec, dict):
        spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
    if op in spec:
        raise ApiError(
            422, "invalid_filter", f"filter {name!r} {op!r} is given twice (in filters and as a parameter)"
        )
    filters[name] = {**spec, op: value}


# -- cursors ----------------------------------------------------------------------------------
def encode_cursor(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        offset, owner = int(data["o"]), str(data["f"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API handed out") from None
    if owner != fingerprint:
        raise ApiError(
            422, "invalid_cursor", "the cursor belongs to another query: repeat the query it came from"
        )
    if not 0 <= offset <= OFFSET_MAX:
        raise ApiError(
            422, "invalid_cursor", f"the cursor points past the deepest page ({OFFSET_MAX} results)"
        )
    return offset


# -- running and shaping ------------------------------------------------------------------------
def run_search(
    engine: SearchEngine,
    spec: SearchSpec,
    url_prefix: str,
    image_vector: np.ndarray | None = None,
    started: float | None = None,
) -> SearchResponse:
    started = time.perf_counter() if started is None else started
    page = engine.search(spec.to_query(image_vector))
    more = page.next_offset is not None and page.next_offset <= OFFSET_MAX
    nxt = encode_cursor(page.next_offset, spec.fingerprint()) if more else None
    return SearchResponse(
        results=[result_out(r, url_prefix) for r in page.results],
        next=nxt,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def result_out(r: Result, prefix: str) -> ResultOut:
    return ResultOut(
        id=r.id,
        unit_id=r.unit_id,
        kind=r.kind,
        path=r.path,
        title=r.title,
        score=r.score,
        media_url=f"{prefix}/v1/media/{r.id}",
        thumbnail_url=f"{prefix}/v1/thumbnails/{r.unit_id}",
        metadata=r.metadata,
        start=r.start,
        end=r.end,
        best_time=r.best_time,
        width=r.width,
        height=r.height,
    )


def item_out(asset: Asset, units: list[Unit], prefix: str) -> ItemOut:
    unit_rows = [
        UnitOut(
            unit_id=u.id,
            start=u.t_start,
            end=u.t_end,
            best_time=u.t_best,
            thumbnail_url=f"{prefix}/v1/thumbnails/{u.id}",
        )
        for u in units
    ]
    return ItemOut(
        id=asset.id,
        kind=asset.kind,
        path=asset.path,
        status=asset.status,
        error=asset.error,
        title=asset.title,
        sku=asset.sku,
        description=asset.description,
        price=asset.price,
        currency=asset.currency,
        category=asset.category,
        url=asset.url,
        width=asset.width,
        height=asset.height,
        duration=asset.duration,
        fps=asset.fps,
        size=asset.size,
        indexed_at=asset.indexed_at.isoformat() if asset.indexed_at else None,
        metadata=dict(asset.extra or {}),
        media_url=f"{prefix}/v1/media/{asset.id}",
        thumbnail_url=unit_rows[0].thumbnail_url if unit_rows else None,
        units=unit_rows,
    )
