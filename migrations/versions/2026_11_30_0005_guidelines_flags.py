"""guidelines and reference images per project; raters' unsure flags and notes to the leads

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "guidelines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("definitions", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk("guidelines", "project_id", "projects", "CASCADE"),
        _fk("guidelines", "updated_by_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guidelines")),
        sa.UniqueConstraint("project_id", name=op.f("uq_guidelines_project_id")),
    )
    op.create_table(
        "reference_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("display_key", sa.String(length=200), nullable=False),
        sa.Column("thumb_key", sa.String(length=200), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("reference_images", "project_id", "projects", "CASCADE"),
        _fk("reference_images", "created_by_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_images")),
        sa.UniqueConstraint(
            "project_id",
            "target",
            "sha256",
            name=op.f("uq_reference_images_project_id_target_sha256"),
        ),
    )
    with op.batch_alter_table("reference_images", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reference_images_project_id"), ["project_id"], unique=False
        )
    op.create_table(
        "item_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("unsure", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk("item_flags", "project_id", "projects", "CASCADE"),
        _fk("item_flags", "rater_id", "users", "RESTRICT"),
        _fk("item_flags", "image_id", "images", "CASCADE"),
        _fk("item_flags", "answered_by_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_flags")),
        sa.UniqueConstraint("rater_id", "image_id", name=op.f("uq_item_flags_rater_id_image_id")),
    )
    with op.batch_alter_table("item_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_flags_image_id"), ["image_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_flags_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_flags_rater_id"), ["rater_id"], unique=False)


def downgrade() -> None:
    op.drop_table("item_flags")
    op.drop_table("reference_images")
    op.drop_table("guidelines")
