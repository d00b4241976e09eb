"""a video's segments are found by time: index units on (asset_id, t_start, id)

Revision ID: 0008_segment_time_index
Revises: 0007_ocr_text
Create Date: 2026-12-06

Query-fitted moments read only the segments around each hit, "the 32 segments before this one"
(search/moments.py), so the read path seeks by (asset_id, t_start) instead of reading a whole
video. The new index leads with asset_id, so it also serves every lookup the old one-column index
did (cascading deletes, an item's units) and replaces it.
"""

from alembic import op

revision = "0008_segment_time_index"
down_revision = "0007_ocr_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_units_asset_time", "units", ["asset_id", "t_start", "id"])
    op.drop_index("ix_units_asset_id", table_name="units")


def downgrade() -> None:
    op.create_index("ix_units_asset_id", "units", ["asset_id"])
    op.drop_index("ix_units_asset_time", table_name="units")
