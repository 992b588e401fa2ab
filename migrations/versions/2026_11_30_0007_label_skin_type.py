"""labels and label revisions: the optional skin-type answer (Fitzpatrick 1-6, 0 cannot assess)

A project that also asks the Fitzpatrick skin type stores the rater's second answer beside the main
one: 1-6 for types I-VI, 0 for "cannot assess", NULL when the question was not asked (every label
before this revision). Existing rows are left as they are.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("labels", "label_revisions")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("skin_type", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("skin_type")
