"""the library records its weights unambiguously: 'bundled', 'none' (random init) or a tag/file

Revision ID: 0005_model_defaults
Revises: 0004
Create Date: 2026-12-05

Before this revision a NULL ``library.pretrained`` meant the bundled checkpoint for glimpse-demo
and a random initialisation for every other model, and ``--pretrained none`` could not ask for
a random glimpse-demo. Now each model has a default of its own (core/models.py
``default_pretrained``) and the record says which weights were used: ``bundled`` for a bundled
model's checkpoint, ``none`` for a random initialisation of a model whose default is not random,
NULL only for glimpse-tiny (whose default is random init). The rows keep their old meaning.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_model_defaults"
down_revision = "0004"
branch_labels = None
depends_on = None

BUNDLED_MODELS = ("glimpse-demo",)
RANDOM_BY_DEFAULT = ("glimpse-tiny",)

library = sa.table("library", sa.column("model_name", sa.String), sa.column("pretrained", sa.String))


def upgrade() -> None:
    op.execute(
        library.update()
        .where(library.c.pretrained.is_(None), library.c.model_name.in_(BUNDLED_MODELS))
        .values(pretrained="bundled")
    )
    op.execute(
        library.update()
        .where(
            library.c.pretrained.is_(None), library.c.model_name.not_in(BUNDLED_MODELS + RANDOM_BY_DEFAULT)
        )
        .values(pretrained="none")
    )


def downgrade() -> None:
    op.execute(
        library.update()
        .where(library.c.pretrained == "bundled", library.c.model_name.in_(BUNDLED_MODELS))
        .values(pretrained=None)
    )
    # A random glimpse-demo had no spelling before this revision: it reads as the bundled one.
    op.execute(library.update().where(library.c.pretrained == "none").values(pretrained=None))
