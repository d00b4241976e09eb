"""text read in pictures (OCR), per unit, with the database's own full-text index

Revision ID: 0007_ocr_text
Revises: 0006_full_text
Create Date: 2026-12-05

``ocr_text`` holds what was read in a unit (a row means it was read), ``ocr_lines`` each line with
its confidence and box. The full-text index is the database's own: SQLite FTS5 (``ocr_fts``, an
external-content table kept in step by triggers) or PostgreSQL (a generated ``tsvector`` column
with a GIN index). Units indexed before this revision have no rows: a run with OCR on reads them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_ocr_text"
down_revision = "0006_full_text"
branch_labels = None
depends_on = None

IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_FTS_ADD = "INSERT INTO ocr_fts(rowid, text) VALUES (new.unit_id, new.text);"
_FTS_DROP = "INSERT INTO ocr_fts(ocr_fts, rowid, text) VALUES ('delete', old.unit_id, old.text);"
SQLITE_FTS = [
    (
        "CREATE VIRTUAL TABLE ocr_fts USING fts5(text, content='ocr_text', content_rowid='unit_id', "
        "tokenize='unicode61 remove_diacritics 2')"
    ),
    f"CREATE TRIGGER ocr_text_ai AFTER INSERT ON ocr_text BEGIN {_FTS_ADD} END",
    f"CREATE TRIGGER ocr_text_ad AFTER DELETE ON ocr_text BEGIN {_FTS_DROP} END",
    f"CREATE TRIGGER ocr_text_au AFTER UPDATE ON ocr_text BEGIN {_FTS_DROP} {_FTS_ADD} END",
]
POSTGRES_FTS = [
    "ALTER TABLE ocr_text ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED",
    "CREATE INDEX ix_ocr_text_tsv ON ocr_text USING GIN (tsv)",
]


def upgrade() -> None:
    op.create_table(
        "ocr_text",
        sa.Column("unit_id", IdType, sa.ForeignKey("units.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
    )
    op.create_table(
        "ocr_lines",
        sa.Column(
            "unit_id",
            IdType,
            sa.ForeignKey("units.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("line", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("time", sa.Float(), nullable=True),
    )
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_FTS if dialect == "sqlite" else POSTGRES_FTS if dialect == "postgresql" else []:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("ocr_text_au", "ocr_text_ad", "ocr_text_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS ocr_fts")
    op.drop_table("ocr_lines")
    op.drop_table("ocr_text")
