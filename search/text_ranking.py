"""The OCR ranking of a text query, fused with the vector ranking (search/fusion.py).

Units whose recognised text (core/ocr_text.py) matches the query's words are ranked by the
database's full-text engine; each is mapped onto the result it belongs to (an image; the video
moment that covers the time the text was read, or the segment itself when no moment does), and the
two rankings are fused by reciprocal rank. A moment whose text matched plays from where the text was read. Every
result found by its text says where:
``{"source": "ocr", "text": ..., "snippet": ..., "time": ..., "label": "OCR: 'OPEN 24 HOURS' at 00:03:12"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from glimpse.core import ocr_text
from glimpse.core.library import Library
from glimpse.core.ocr_text import TextHit
from glimpse.core.vocabulary import Kind
from glimpse.search import reads
from glimpse.search.fusion import rrf

if TYPE_CHECKING:
    from glimpse.core.catalogue import Asset
    from glimpse.core.index import VectorIndex
    from glimpse.search.engine import Result

# The OCR ranking is cut at this many units (beyond the page being served).
TEXT_CANDIDATES = 100

ResultKey = tuple[int, float | None]
BuildResult = Callable[..., "Result"]


def ocr_label(text: str, time: float | None) -> str:
    """How a hit says where its text was found: ``OCR: 'OPEN 24 HOURS'`` (+ `` at 00:03:12`` in a video)."""
    shown = text if len(text) <= 80 else text[:79] + "…"
    if time is None:
        return f"OCR: '{shown}'"
    whole = int(time)
    return f"OCR: '{shown}' at {whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def text_hits(library: Library, query: str, want: int) -> list[TextHit]:
    """The OCR hits a ranking of ``want`` results fuses: ``TEXT_CANDIDATES`` more than it shows."""
    with library.Session() as s:
        return ocr_text.search(s, query, TEXT_CANDIDATES + want)


def fuse_ocr(
    library: Library,
    index: VectorIndex,
    vector: np.ndarray,
    query: str,
    results: list[Result],
    build: BuildResult,
    *,
    allowed: np.ndarray | None = None,
    skip_items: set[int] | frozenset[int] = frozenset(),
    skip_units: set[int] | frozenset[int] = frozenset(),
    want: int = 0,
    hits: list[TextHit] | None = None,
) -> list[Result]:
    """``results`` (the vector ranking, best first) fused with the OCR ranking of ``query``; a
    result only found by its text gets the cosine of its unit as its ``score``. Without text
    matches, ``results`` come back as they are. ``hits``: :func:`text_hits` of ``query`` when the
    caller has read them already."""
    by_key: dict[ResultKey, Result] = {(r.id, r.start): r for r in results}
    ranked = ocr_ranking(
        library,
        index,
        vector,
        query,
        by_key,
        build,
        allowed=allowed,
        skip_items=skip_items,
        skip_units=skip_units,
        want=want,
        hits=hits,
    )
    if not ranked:
        return results
    return fuse_results(results, by_key, {"ocr": ranked})


def fuse_results(
    results: list[Result], by_key: dict[ResultKey, Result], rankings: Mapping[str, list[ResultKey]]
) -> list[Result]:
    """The vector ranking (``results``, best first) fused by reciprocal rank with other rankings of
    result keys (``(id, start)``; every key in ``by_key``), e.g. ``{"ocr": ..., "keyword": ...}``."""
    found = [(r.id, r.start) for r in results]
    fused = rrf({"vector": _vector_ranking(found, by_key), **rankings})
    return [by_key[f.key] for f in fused]  # type: ignore[index]  # keys are ResultKeys


def ocr_ranking(
    library: Library,
    index: VectorIndex,
    vector: np.ndarray,
    query: str,
    by_key: dict[ResultKey, Result],
    build: BuildResult,
    *,
    allowed: np.ndarray | None = None,
    skip_items: set[int] | frozenset[int] = frozenset(),
    skip_units: set[int] | frozenset[int] = frozenset(),
    want: int = 0,
    hits: list[TextHit] | None = None,
) -> list[ResultKey]:
    """The keys of the results whose text matches ``query``, best first. Each hit is placed on the
    result it belongs to in ``by_key`` (the results so far, by ``(id, start)``), which gets a
    ``text_matches`` entry; a hit no result covers becomes a new result, added to ``by_key``."""
    if hits is None:
        hits = text_hits(library, query, want)
    if not hits:
        return []
    ids = np.array([h.unit_id for h in hits], dtype=np.int64)
    keep = ~np.isin(ids, np.fromiter(skip_units, np.int64, len(skip_units))) & index.contains(ids)
    if allowed is not None:
        keep &= np.isin(ids, allowed)
    hits = [h for h, ok in zip(hits, keep, strict=True) if ok]
    if not hits:
        return []
    ids = np.array([h.unit_id for h in hits], dtype=np.int64)
    scores = index.vectors(ids).astype(np.float32) @ vector
    rows, assets = reads.read_hits(library, ids, scores, None)
    by_unit = {h.unit_id: h for h in hits}
    ranked: list[ResultKey] = []
    for row in rows:
        if row.asset_id in skip_items:
            continue
        hit = by_unit[row.unit_id]
        result = _place(row, hit, assets[row.asset_id], list(by_key.values()), build)
        key = (result.id, result.start)
        found = by_key.setdefault(key, result)
        if found.start is not None and hit.time is not None and not found.text_matches:
            found.best_time = hit.time  # play a moment found by its text from where the text shows
        found.text_matches.append(
            {
                "source": "ocr",
                "text": hit.line,
                "snippet": hit.snippet,
                "time": hit.time,
                "unit_id": hit.unit_id,
                "label": ocr_label(hit.line or hit.snippet.replace("**", ""), hit.time),
            }
        )
        if key not in ranked:
            ranked.append(key)
    return ranked


def _vector_ranking(found: list[ResultKey], by_key: dict[ResultKey, Result]) -> list[ResultKey]:
    """The vector ranking with the results only the text found put where their own score ranks
    them, when it ranks them within the depth the vector search reached (below it their vector
    rank is unknown and counts nothing): fusion then does not depend on how deep that search went."""
    if not found:
        return []
    floor = min(by_key[key].score for key in found)
    known = set(found)
    extra = [key for key in by_key if key not in known and by_key[key].score >= floor]
    if not extra:
        return found
    return sorted([*found, *extra], key=lambda key: -by_key[key].score)


def _place(
    row: reads.Hit, hit: ocr_text.TextHit, asset: Asset, results: list[Result], build: BuildResult
) -> Result:
    """The result an OCR hit belongs to: its image's, or the moment of its video covering the time
    the text was read; else a new result for it."""
    if asset.kind != Kind.VIDEO:
        found = next((r for r in results if r.id == asset.id), None)
        return found or build(asset, row.unit_id, row.score)
    when = hit.time if hit.time is not None else row.t_best
    for r in results:
        if (
            r.id == asset.id
            and when is not None
            and r.start is not None
            and r.end is not None
            and r.start <= when <= r.end
        ):
            return r
    return build(asset, row.unit_id, row.score, start=row.t_start, end=row.t_end, best_time=when)
