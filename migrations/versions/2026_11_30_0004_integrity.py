"""integrity: queue items remember when they were first shown, revocable sessions, expiring tokens,
time spent that cannot overflow

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queue_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shown_at", sa.DateTime(timezone=True), nullable=True))
    # Nothing recorded what a rater was shown before this revision. Treat as shown every item that
    # is answered or skipped and each queue's first pending item (what queue/next served last), so
    # that a rebalance never moves work a rater may have seen.
    op.execute("UPDATE queue_items SET shown_at = created_at WHERE status <> 'pending'")
    op.execute(
        "UPDATE queue_items SET shown_at = created_at WHERE id IN ("
        " SELECT q.id FROM queue_items q WHERE q.status = 'pending' AND q.position = ("
        "  SELECT MIN(p.position) FROM queue_items p WHERE p.rater_id = q.rater_id"
        "  AND p.project_id = q.project_id AND p.status = 'pending'))"
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    for table in ("labels", "label_revisions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "time_spent_ms",
                existing_type=sa.Integer(),
                type_=sa.BigInteger(),
                existing_nullable=False,
            )


def downgrade() -> None:
    for table in ("labels", "label_revisions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "time_spent_ms",
                existing_type=sa.BigInteger(),
                type_=sa.Integer(),
                existing_nullable=False,
            )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
    with op.batch_alter_table("queue_items", schema=None) as batch_op:
        batch_op.drop_column("shown_at")
