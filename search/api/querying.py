"""Running a search for a route: resolve its cursor, ask the engine, page the answer as JSON."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from glimpse.search.api.schemas import ResultOut, SearchResponse
from glimpse.search.engine import SearchEngine
from glimpse.search.paths import PathDisplay
from glimpse.search.query import OFFSET_MAX, SearchQuery, encode_cursor

if TYPE_CHECKING:
    from PIL import Image


def run_search(
    engine: SearchEngine,
    query: SearchQuery,
    url_prefix: str,
    paths: PathDisplay,
    *,
    image: Image.Image | None = None,
    exclude_items: tuple[int, ...] = (),
    identity: dict[str, Any] | None = None,
    started: float | None = None,
) -> SearchResponse:
    """One page of ``query`` with a ``next`` cursor bound to it.

    ``identity`` is what else makes the result list (an uploaded image's digest, the item a route
    leaves out): a cursor from another upload or item is refused.
    """
    started = time.perf_counter() if started is None else started
    context = {**(identity or {}), "exclude": list(exclude_items)}
    offset = query.start(**context)
    page = engine.search(query, image=image, exclude_items=exclude_items, offset=offset)
    nxt = None
    if page.next_offset is not None and page.next_offset <= OFFSET_MAX:
        nxt = encode_cursor(page.next_offset, query.fingerprint(**context))
    return SearchResponse(
        results=[ResultOut.build(r, url_prefix, paths) for r in page.results],
        next=nxt,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
