"""Keyword search over the catalogue's text with each database's own full-text engine.

Every item with catalogue text has one ``search_text`` row (migration ``0006_full_text``): its
title, sku, category, description, and the manifest's extra columns as one text. SQLite indexes it
with FTS5 (``search_fts``: porter stemming over unicode61 tokens, BM25 ranking), PostgreSQL with a
generated ``tsvector`` under a GIN index (English configuration, ``ts_rank``). This module writes
the rows (:func:`sync`, :func:`sync_rows`; removal follows the asset by foreign-key cascade) and
asks the index (:func:`keyword_ranking`, :func:`matches`, :func:`exact_sku`).

A query's words (:func:`query_terms`): items holding all of them first, then any of them, each
group ranked by BM25 / ts_rank with fields weighted title = sku > category > description > extra. Another text source (OCR text, per unit, in its own table) fits as one
more ranking with the same shape: ``(asset_id, score)`` best first, fused by rank
(:mod:`glimpse.search.fusion`), never by mixing these scores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from glimpse.core.catalogue import Asset, SearchText
from glimpse.core.vocabulary import Status

FIELDS = ("title", "sku", "category", "description", "extra")
"""The indexed fields, in the order of the FTS5 columns; a match is reported in the first of them."""

SQLITE_WEIGHTS = (10.0, 10.0, 4.0, 2.0, 1.0)  # bm25() column weights, in FIELDS order
MAX_TERMS = 32  # words of one query that are searched for
SOME_WORDS_BELOW = 20
"""Items holding only some of the words are looked for when fewer than this many hold them all:
past that, the all-words matches are the keyword answer (and scoring "any word" would cost a
pass over a large part of the catalogue for common words)."""
HIGHLIGHT = ("«", "»")  # around each matched word in a snippet
SNIPPET_WORDS = 12
_CHUNK = 5_000  # ids per IN (...) / rows per INSERT
MAX_DEPTH = 1_000_000  # most FTS5 matches ranked to find ``limit`` that pass the filters

# English words that say nothing about a product: matched as "any of the words", they would find
# everything. (PostgreSQL's English configuration drops them too; FTS5 has no stop list.)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "show",
        "some",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "this",
        "those",
        "to",
        "under",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "will",
        "with",
        "without",
        "you",
        "your",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)

_fts = table("search_fts", column("rowid"))
_FTS: ColumnElement[Any] = literal_column("search_fts")
_ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")


@dataclass(frozen=True)
class KeywordMatch:
    """Where an item matched: the first field (in :data:`FIELDS` order) holding a query word, and
    that field's text around the match with each matched word between :data:`HIGHLIGHT` marks."""

    field: str
    snippet: str


# -- writing -----------------------------------------------------------------------------------
def text_row(asset_id: int, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The ``search_text`` row of an item with catalogue ``fields`` (title, sku, category,
    description, extra: a dict of further manifest columns), or None when it has no text."""
    extra = fields.get("extra")
    extra_text = " ".join(str(v) for v in (extra or {}).values() if v not in (None, "")) or None
    row: dict[str, Any] = {
        "asset_id": asset_id,
        **{f: _text(fields.get(f)) for f in ("title", "sku", "category", "description")},
        "extra": extra_text,
    }
    return row if any(row[f] for f in FIELDS) else None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def sync(session: Session, asset_ids: Iterable[int]) -> None:
    """Make the text rows of ``asset_ids`` match their catalogue fields now (in ``session``'s
    transaction): after a manifest import, an indexing run, any change of the fields."""
    ids = sorted(set(asset_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        assets = session.execute(
            select(Asset.id, Asset.title, Asset.sku, Asset.category, Asset.description, Asset.extra).where(
                Asset.id.in_(chunk)
            )
        )
        rows = [text_row(a.id, a._asdict()) for a in assets]
        session.execute(delete(SearchText).where(SearchText.asset_id.in_(chunk)))
        sync_rows(session, [r for r in rows if r is not None])


def sync_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new text rows (from :func:`text_row`) for items that have none yet (bulk import)."""
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(SearchText), list(rows[start : start + _CHUNK]))


def rebuild(session: Session) -> int:
    """Rewrite every text row from the catalogue; returns how many items have text."""
    session.execute(delete(SearchText))
    ids = list(session.scalars(select(Asset.id).order_by(Asset.id)))
    sync(session, ids)
    return int(session.scalar(select(func.count()).select_from(SearchText)) or 0)


def has_text(session: Session) -> bool:
    """Whether any item has catalogue text (then hybrid search is the default). One primary-key
    lookup (the largest id), whatever the library's size: asked on every search."""
    return session.scalar(select(func.max(SearchText.asset_id))) is not None


# -- reading -----------------------------------------------------------------------------------
def query_terms(q: str | None) -> list[str]:
    """The words of a query that are searched for: lower-cased, stop words dropped, each once."""
    words = [w.lower() for w in _WORD.findall(q or "")]
    kept = [w for w in dict.fromkeys(words) if w not in STOPWORDS and w.strip("_")]
    return kept[:MAX_TERMS]


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _fts_query(terms: Sequence[str], op: str) -> str:
    # Each term is \w+ only, so quoting it makes an FTS5 string that cannot be read as syntax.
    return f" {op} ".join(f'"{t}"' for t in terms)


def _pg_query(terms: Sequence[str], op: str) -> ColumnElement[Any]:
    # \w+ terms hold none of tsquery's operators; to_tsquery stems them and drops stop words.
    return func.to_tsquery(_ENGLISH, bindparam("tsq", f" {op} ".join(terms)))


def keyword_ranking(
    session: Session, terms: Sequence[str], conditions: Sequence[ColumnElement[bool]], limit: int
) -> list[tuple[int, float, bool]]:
    """Up to ``limit`` indexed items holding the query's words and meeting ``conditions`` (on
    :class:`Asset`), best first: (asset id, score, whether it holds every word).

    Items holding every word come first, then, when fewer than :data:`SOME_WORDS_BELOW` hold
    them all, items holding some of them; within each, the
    engine's score, higher is better (SQLite: -BM25; PostgreSQL: ts_rank), ties by id. Every
    word first is also the cheap way: the engine intersects its posting lists and scores the few
    items left, where "any word" would score a large part of the catalogue for common words."""
    if not terms or limit < 1:
        return []
    where = [Asset.status == Status.INDEXED, *conditions]
    rank = _sqlite_ranking if _sqlite(session) else _pg_ranking
    found = [(i, score, True) for i, score in rank(session, terms, "AND", where, limit)]
    if len(found) < min(limit, SOME_WORDS_BELOW) and len(terms) > 1:
        seen = {i for i, _, _ in found}
        some = rank(session, terms, "OR", where, limit + len(found))
        found += [(i, score, False) for i, score in some if i not in seen][: limit - len(found)]
    return found


def _pg_ranking(
    session: Session, terms: Sequence[str], op: str, where: list[ColumnElement[bool]], limit: int
) -> list[tuple[int, float]]:
    tsq = _pg_query(terms, "&" if op == "AND" else "|")
    document: ColumnElement[Any] = literal_column("search_text.document")
    rank = func.ts_rank(document, tsq)
    stmt = (
        select(Asset.id, rank)
        .select_from(SearchText.__table__.join(Asset, Asset.id == SearchText.asset_id))
        .where(document.op("@@")(tsq), *where)
        .order_by(rank.desc(), Asset.id)
        .limit(limit)
    )
    return [(int(i), float(r)) for i, r in session.execute(stmt)]


def _sqlite_ranking(
    session: Session, terms: Sequence[str], op: str, where: list[ColumnElement[bool]], limit: int
) -> list[tuple[int, float]]:
    """FTS5 ranks inside itself (``ORDER BY rank LIMIT``: BM25 with :data:`SQLITE_WEIGHTS`, set by
    the migration); the catalogue conditions are checked on that top, which grows fourfold while
    too few of it pass and more matches remain."""
    match = _fts_query(terms, op)
    depth = limit
    while True:
        top = (
            select(_fts.c.rowid.label("rowid"), literal_column("rank").label("rank"))
            .where(text("search_fts MATCH :m").bindparams(m=match))
            .order_by(literal_column("rank"))
            .limit(depth)
            .subquery()
        )
        stmt = (
            select(Asset.id, top.c.rank)
            .select_from(top.join(Asset, Asset.id == top.c.rowid))
            .where(*where)
            .order_by(top.c.rank, Asset.id)
            .limit(limit)
        )
        found = [(int(i), -float(r)) for i, r in session.execute(stmt)]
        if len(found) >= limit or depth >= MAX_DEPTH:
            return found
        total = session.scalar(
            select(func.count()).select_from(_fts).where(text("search_fts MATCH :m").bindparams(m=match))
        )
        if depth >= int(total or 0):
            return found
        depth *= 4


def matches(session: Session, terms: Sequence[str], asset_ids: Sequence[int]) -> dict[int, KeywordMatch]:
    """For each of ``asset_ids`` holding a query word: the field it matched in, with a snippet
    (FTS5 ``snippet()``; PostgreSQL ``ts_headline``) marking the words with :data:`HIGHLIGHT`."""
    if not terms or not asset_ids:
        return {}
    start_sel, stop_sel = HIGHLIGHT
    ids = list(asset_ids)
    if _sqlite(session):
        parts = [func.snippet(_FTS, i, start_sel, stop_sel, "…", SNIPPET_WORDS) for i in range(len(FIELDS))]
        stmt = select(_fts.c.rowid, *parts).where(
            text("search_fts MATCH :m").bindparams(m=_fts_query(terms, "OR")), _fts.c.rowid.in_(ids)
        )
    else:
        options = f"StartSel={start_sel}, StopSel={stop_sel}, MaxWords={SNIPPET_WORDS + 6}, MinWords=4"
        tsq = _pg_query(terms, "|")
        parts = [
            func.ts_headline(_ENGLISH, func.coalesce(getattr(SearchText, f), ""), tsq, options)
            for f in FIELDS
        ]
        stmt = select(SearchText.asset_id, *parts).where(
            and_(literal_column("search_text.document").op("@@")(tsq), SearchText.asset_id.in_(ids))
        )
    found: dict[int, KeywordMatch] = {}
    for row in session.execute(stmt):
        for name, snippet in zip(FIELDS, row[1:], strict=True):
            if snippet and start_sel in snippet:
                found[int(row[0])] = KeywordMatch(name, str(snippet))
                break
    return found


def exact_sku(session: Session, q: str | None, conditions: Sequence[ColumnElement[bool]]) -> list[int]:
    """Indexed items (meeting ``conditions``) whose SKU is the whole query, ignoring case and the
    spaces around it: the item a shopper who types "GL-4471" wants first (a query with a space
    in it is not a SKU). Ascending ids.

    Found through the full-text index (items holding every word of the query), then compared
    whole, so no scan of the catalogue runs for it."""
    sku = (q or "").strip()
    terms = [w.lower() for w in _WORD.findall(sku)]
    if not terms or len(sku) > 200 or any(c.isspace() for c in sku):
        return []  # SKUs are one code, never words with spaces
    where = [func.lower(Asset.sku) == sku.lower(), Asset.status == Status.INDEXED, *conditions]
    if _sqlite(session):
        stmt = (
            select(Asset.id)
            .select_from(_fts.join(Asset, Asset.id == _fts.c.rowid))
            .where(text("search_fts MATCH :m").bindparams(m=_fts_query(terms, "AND")), *where)
        )
    else:
        stmt = (
            select(Asset.id)
            .select_from(SearchText.__table__.join(Asset, Asset.id == SearchText.asset_id))
            .where(literal_column("search_text.document").op("@@")(_pg_query(terms, "&")), *where)
        )
    return sorted(int(i) for i in session.scalars(stmt))
