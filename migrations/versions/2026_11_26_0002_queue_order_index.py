"""queue order index: a rater's next item without scanning their whole queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queue_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_queue_items_queue_order",
            ["rater_id", "project_id", "status", "position"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("queue_items", schema=None) as batch_op:
        batch_op.drop_index("ix_queue_items_queue_order")
