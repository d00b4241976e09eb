"""segments remember whether a detected cut precedes them

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-29

Query-fitted moments end at a cut unless the query keeps matching on both sides of it, so the
indexer records the cuts it detected. Segments indexed before this revision have no record of
them (false): their moments are fitted by the scores alone until the video is re-indexed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would rebuild the SQLite table and lose its AUTOINCREMENT
    # (unit ids must never be handed out twice).
    op.add_column("units", sa.Column("shot_start", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("units", "shot_start")
