"""full-text index over the catalogue's text (SQLite FTS5, PostgreSQL tsvector + GIN)

Revision ID: 0006_full_text
Revises: 0005_model_defaults
Create Date: 2026-12-05

``search_text`` holds each item's searchable text, one row per asset (title, sku, category,
description and the manifest's extra columns as one text); it is deleted with its asset (foreign
key cascade). Each database indexes it with its own engine:

* SQLite: an external-content FTS5 table ``search_fts`` (porter stemming over unicode61), kept in
  step with ``search_text`` by triggers;
* PostgreSQL: a stored generated ``document`` tsvector (English configuration, fields weighted
  A title/sku, B category, C description, D extra) with a GIN index.

The code writes ``search_text`` only (``glimpse.core.fulltext``); the rest follows by itself.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0006_full_text"
down_revision = "0005_model_defaults"
branch_labels = None
depends_on = None

FIELDS = ("title", "sku", "category", "description", "extra")


def upgrade() -> None:
    bind = op.get_bind()
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "search_text",
        sa.Column("asset_id", id_type, sa.ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
        *(sa.Column(name, sa.Text(), nullable=True) for name in FIELDS),
    )
    if bind.dialect.name == "sqlite":
        cols = ", ".join(FIELDS)
        new = ", ".join(f"new.{f}" for f in FIELDS)
        old = ", ".join(f"old.{f}" for f in FIELDS)
        op.execute(
            f"CREATE VIRTUAL TABLE search_fts USING fts5({cols}, content='search_text', "
            "content_rowid='asset_id', tokenize='porter unicode61 remove_diacritics 2')"
        )
        # FTS5's own `rank` column ranks by BM25 with these field weights (title, sku, category,
        # description, extra): ORDER BY rank ... LIMIT runs inside FTS5 (glimpse.core.fulltext).
        op.execute(
            "INSERT INTO search_fts(search_fts, rank) VALUES ('rank', 'bm25(10.0, 10.0, 4.0, 2.0, 1.0)')"
        )
        op.execute(
            "CREATE TRIGGER search_text_ai AFTER INSERT ON search_text BEGIN "
            f"INSERT INTO search_fts(rowid, {cols}) VALUES (new.asset_id, {new}); END"
        )
        op.execute(
            "CREATE TRIGGER search_text_ad AFTER DELETE ON search_text BEGIN "
            f"INSERT INTO search_fts(search_fts, rowid, {cols}) VALUES ('delete', old.asset_id, {old}); END"
        )
        op.execute(
            "CREATE TRIGGER search_text_au AFTER UPDATE ON search_text BEGIN "
            f"INSERT INTO search_fts(search_fts, rowid, {cols}) VALUES ('delete', old.asset_id, {old}); "
            f"INSERT INTO search_fts(rowid, {cols}) VALUES (new.asset_id, {new}); END"
        )
    else:
        op.execute(
            f"ALTER TABLE search_text ADD COLUMN document tsvector GENERATED ALWAYS AS ("
            f"setweight(to_tsvector('english', {_words('title')}), 'A') || "
            f"setweight(to_tsvector('english', {_words('sku')}), 'A') || "
            f"setweight(to_tsvector('english', {_words('category')}), 'B') || "
            f"setweight(to_tsvector('english', {_words('description')}), 'C') || "
            f"setweight(to_tsvector('english', {_words('extra')}), 'D')) STORED"
        )
        op.execute("CREATE INDEX ix_search_text_document ON search_text USING GIN (document)")
    _backfill(bind)


def _words(field: str) -> str:
    """A field with punctuation turned into spaces, as FTS5's unicode61 tokenizer splits words:
    PostgreSQL's parser would read "GL-4471" as "gl" and the negative number "-4471"."""
    return f"regexp_replace(coalesce({field}, ''), '[^[:alnum:][:space:]]+', ' ', 'g')"


def _backfill(bind: sa.Connection) -> None:
    """Items catalogued before this revision get their text now (the same rule as
    ``glimpse.core.fulltext.text_row``, repeated here so the revision never changes with the code)."""
    assets = sa.table(
        "assets",
        sa.column("id"),
        sa.column("title"),
        sa.column("sku"),
        sa.column("category"),
        sa.column("description"),
        sa.column("extra", sa.JSON()),
    )
    target = sa.table("search_text", sa.column("asset_id"), *(sa.column(f) for f in FIELDS))
    rows = []
    for r in bind.execute(sa.select(assets)):
        extra = r.extra if isinstance(r.extra, dict) else (json.loads(r.extra) if r.extra else None)
        extra_text = " ".join(str(v) for v in (extra or {}).values() if v not in (None, "")) or None
        row = {
            "asset_id": r.id,
            "title": r.title,
            "sku": r.sku,
            "category": r.category,
            "description": r.description,
            "extra": extra_text,
        }
        if any(row[f] for f in FIELDS):
            rows.append(row)
    if rows:
        bind.execute(sa.insert(target), rows)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("search_text_ai", "search_text_ad", "search_text_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_text")
