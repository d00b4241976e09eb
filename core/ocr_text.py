"""The text read in pictures (core/ocr.py), stored per unit and searched with the database's own
full-text engine: SQLite FTS5 (``ocr_fts``, kept in step with ``ocr_text`` by triggers) or
PostgreSQL (a generated ``tsvector`` column with a GIN index); see migration ``0007_ocr_text``.

A unit with a row in ``ocr_text`` has been read (its ``text`` may be empty: nothing legible, or
``error`` says why not); a unit without one has not, and a later run with OCR on fills it in
without embedding it again. Rows go with their unit (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, Text, delete, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from glimpse.core.catalogue import Asset, Base, IdType, Unit
from glimpse.core.fulltext import STOPWORDS
from glimpse.core.ocr import OcrLine, OcrResult
from glimpse.core.vocabulary import Status

# Query words that say nothing about the text in a picture ("a sign with the word open"): the
# catalogue search's English stop words, and the words people use to point at text.
STOP_WORDS = STOPWORDS | frozenset(["saying", "says", "sign", "text", "word", "words", "written"])
MAX_TERMS = 16
HIGHLIGHT = ("**", "**")  # around each matched word in a snippet
SNIPPET_WORDS = 12


class OcrText(Base):
    """What was read in one unit: its lines joined by newlines (the full-text document)."""

    __tablename__ = "ocr_text"

    unit_id: Mapped[int] = mapped_column(IdType, ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="", server_default="")
    error: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(Float)


class OcrLineRow(Base):
    """One line read in a unit: text, confidence (0..1), box (4 [x, y] corners in the file's pixels)
    and, for a video segment, the second of the frame it was read on."""

    __tablename__ = "ocr_lines"

    unit_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("units.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    box: Mapped[list[Any]] = mapped_column(JSON)
    time: Mapped[float | None] = mapped_column(Float)


@dataclass(frozen=True)
class TextHit:
    """A unit whose text matches a query: ``rank`` 1 is the best; ``snippet`` is the matching text
    with each matched word between ``**``; ``line`` the first matching line as read; ``time`` the
    second of the video frame it was read on (None for an image)."""

    unit_id: int
    rank: int
    snippet: str
    line: str
    time: float | None


# -- writing ---------------------------------------------------------------------------------
def store(session: Session, results: Iterable[tuple[int, OcrResult]]) -> None:
    """Record what was read in each unit (replacing what it had). A result to ``retry`` (the model
    did not load) records nothing, so the next run with OCR on reads the unit again."""
    rows = [(unit_id, r) for unit_id, r in results if not r.retry]
    if not rows:
        return
    ids = [unit_id for unit_id, _ in rows]
    session.execute(delete(OcrLineRow).where(OcrLineRow.unit_id.in_(ids)))
    session.execute(delete(OcrText).where(OcrText.unit_id.in_(ids)))
    session.flush()
    for unit_id, result in rows:
        session.add(OcrText(unit_id=unit_id, text=result.text, error=result.error, seconds=result.seconds))
        session.add_all(
            OcrLineRow(
                unit_id=unit_id, line=i, text=ln.text, confidence=ln.confidence, box=ln.box, time=ln.time
            )
            for i, ln in enumerate(result.lines)
        )


def merge(results: Sequence[OcrResult]) -> OcrResult:
    """One result for a video segment from those of its frames: each distinct line once (as read
    first, with its best confidence), in time order; an error only when every frame failed."""
    lines: dict[str, OcrLine] = {}
    for r in results:
        for ln in r.lines:
            known = lines.get(ln.text)
            if known is None:
                lines[ln.text] = ln
            elif ln.confidence > known.confidence:
                lines[ln.text] = OcrLine(ln.text, ln.confidence, ln.box, known.time)
    errors = [r for r in results if r.error]
    failed = bool(results) and len(errors) == len(results)
    return OcrResult(
        list(lines.values()),
        seconds=sum(r.seconds for r in {id(r): r for r in results}.values()),
        error=errors[0].error if failed else None,
        warning=next((r.warning for r in results if r.warning), None),
        retry=failed and any(r.retry for r in errors),
    )


def merge_frames(results: Sequence[OcrResult | None]) -> OcrResult | None:
    """:func:`merge` of the frames of a segment that were read; None when none was (OCR off)."""
    read = [r for r in results if r is not None]
    return merge(read) if read else None


def problem(results: Iterable[OcrResult | None]) -> str | None:
    """What went wrong reading an item's units, for the run's warnings ("OCR: ..."), or None."""
    for r in results:
        if r is not None and (r.error or r.warning):
            return f"OCR: {r.error or r.warning}"
    return None


def unread_units(session: Session, asset_ids: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """(asset id, unit id) of the indexed units no OCR has read yet, by asset (of ``asset_ids``)."""
    query = (
        select(Unit.asset_id, Unit.id)
        .join(Asset, Asset.id == Unit.asset_id)
        .outerjoin(OcrText, OcrText.unit_id == Unit.id)
        .where(Asset.status == Status.INDEXED, OcrText.unit_id.is_(None))
        .order_by(Unit.asset_id, Unit.id)
    )
    if asset_ids is not None:
        query = query.where(Unit.asset_id.in_(asset_ids))
    return [(a, u) for a, u in session.execute(query)]


# -- reading ---------------------------------------------------------------------------------
def unit_lines(session: Session, unit_ids: Sequence[int]) -> dict[int, list[OcrLine]]:
    """The lines read in each of ``unit_ids`` (units never read, or with nothing legible: absent)."""
    found: dict[int, list[OcrLine]] = {}
    if not unit_ids:
        return found
    rows = session.scalars(
        select(OcrLineRow)
        .where(OcrLineRow.unit_id.in_(unit_ids))
        .order_by(OcrLineRow.unit_id, OcrLineRow.line)
    )
    for row in rows:
        found.setdefault(row.unit_id, []).append(OcrLine(row.text, row.confidence, row.box, row.time))
    return found


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth looking for in pictures' text: lower case, letters and digits
    only, stop words and single letters left out, at most :data:`MAX_TERMS`."""
    words = [w for w in re.findall(r"[^\W_]+", query.lower()) if len(w) > 1 and w not in STOP_WORDS]
    return list(dict.fromkeys(words))[:MAX_TERMS]


def search(session: Session, query: str, limit: int = 100) -> list[TextHit]:
    """The units of indexed items whose text matches any word of ``query``, best first (BM25 on
    SQLite, ``ts_rank_cd`` on PostgreSQL), at most ``limit``. A word of three or more letters also
    matches as a prefix ("open" finds "OPEN24H": OCR often drops the spaces between words)."""
    terms = query_terms(query)
    if not terms or limit < 1:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        match = " OR ".join(f'"{t}"*' if len(t) >= 3 else f'"{t}"' for t in terms)
        sql = text(
            "SELECT f.rowid AS unit_id, "
            f"snippet(ocr_fts, 0, '{HIGHLIGHT[0]}', '{HIGHLIGHT[1]}', '…', {SNIPPET_WORDS}) AS snippet "
            "FROM ocr_fts f JOIN units u ON u.id = f.rowid JOIN assets a ON a.id = u.asset_id "
            "WHERE ocr_fts MATCH :match AND a.status = :indexed "
            "ORDER BY bm25(ocr_fts), f.rowid LIMIT :limit"
        )
    elif dialect == "postgresql":
        match = " | ".join(f"{t}:*" if len(t) >= 3 else t for t in terms)
        options = f"StartSel={HIGHLIGHT[0]}, StopSel={HIGHLIGHT[1]}, MaxWords={SNIPPET_WORDS}, MinWords=3"
        sql = text(
            "SELECT hit.unit_id, ts_headline('simple', hit.text, to_tsquery('simple', :match), "
            f"'{options}') AS snippet FROM ("
            "  SELECT t.unit_id, t.text, ts_rank_cd(t.tsv, to_tsquery('simple', :match)) AS score"
            "  FROM ocr_text t JOIN units u ON u.id = t.unit_id JOIN assets a ON a.id = u.asset_id"
            "  WHERE t.tsv @@ to_tsquery('simple', :match) AND a.status = :indexed"
            "  ORDER BY score DESC, t.unit_id LIMIT :limit"
            ") hit ORDER BY hit.score DESC, hit.unit_id"
        )
    else:  # pragma: no cover - the catalogue runs on SQLite or PostgreSQL only
        raise NotImplementedError(f"no full-text search for {dialect}")
    rows = session.execute(sql, {"match": match, "indexed": Status.INDEXED.value, "limit": limit}).all()
    lines = unit_lines(session, [r.unit_id for r in rows])
    hits = []
    for rank, row in enumerate(rows, start=1):
        line = _first_match(lines.get(row.unit_id, []), terms)
        hits.append(
            TextHit(
                row.unit_id,
                rank,
                " ".join(str(row.snippet).split()),
                line.text if line else "",
                line.time if line else None,
            )
        )
    return hits


def _first_match(lines: list[OcrLine], terms: list[str]) -> OcrLine | None:
    """The first line (in time order) holding a word that starts with one of ``terms``."""
    for ln in sorted(lines, key=lambda ln: ln.time or 0.0):
        words = re.findall(r"[^\W_]+", ln.text.lower())
        if any(w == t or (len(t) >= 3 and w.startswith(t)) for w in words for t in terms):
            return ln
    return lines[0] if lines else None
