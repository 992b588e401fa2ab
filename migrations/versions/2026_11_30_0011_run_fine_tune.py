"""training runs: fine_tune_blocks (the quality model's last N backbone blocks trained with the heads;
0, the frozen backbone, for every existing run), so a background worker sees the option

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(
            sa.Column("fine_tune_blocks", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("fine_tune_blocks")
