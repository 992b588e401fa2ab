"""the model in the loop: stored suggestions and their jobs, reader studies and their readings;
labels and label revisions say whether a suggestion was shown (assisted) and by which model

Existing labels were made without suggestions: assisted is false for every existing row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 17:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reader_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("washout_days", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_reader_studies_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_reader_studies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_studies")),
    )
    with op.batch_alter_table("reader_studies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reader_studies_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "suggestion_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                name="jobstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_suggestion_jobs_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_suggestion_jobs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_jobs")),
    )
    with op.batch_alter_table("suggestion_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suggestion_jobs_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "study_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("assisted", sa.Boolean(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("icd10", sa.String(length=16), nullable=True),
        sa.Column("explanations", sa.JSON(), nullable=False),
        sa.Column("grade", sa.Float(), nullable=True),
        sa.Column("time_spent_ms", sa.Integer(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_study_readings_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"],
            ["users.id"],
            name=op.f("fk_study_readings_rater_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["reader_studies.id"],
            name=op.f("fk_study_readings_study_id_reader_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_readings")),
        sa.UniqueConstraint("public_id", name=op.f("uq_study_readings_public_id")),
        sa.UniqueConstraint(
            "study_id",
            "rater_id",
            "phase",
            "image_id",
            name=op.f("uq_study_readings_study_id_rater_id_phase_image_id"),
        ),
    )
    with op.batch_alter_table("study_readings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_study_readings_order", ["study_id", "rater_id", "phase", "position"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_study_readings_rater_id"), ["rater_id"], unique=False)

    op.create_table(
        "suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_suggestions_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_suggestions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestions")),
        sa.UniqueConstraint("image_id", "model_id", name=op.f("uq_suggestions_image_id_model_id")),
    )
    with op.batch_alter_table("suggestions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suggestions_project_id"), ["project_id"], unique=False)

    with op.batch_alter_table("label_revisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("assisted", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("suggestion_model_id", sa.String(length=64), nullable=True))

    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("assisted", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("suggestion_model_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_column("suggestion_model_id")
        batch_op.drop_column("assisted")

    with op.batch_alter_table("label_revisions", schema=None) as batch_op:
        batch_op.drop_column("suggestion_model_id")
        batch_op.drop_column("assisted")

    with op.batch_alter_table("suggestions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suggestions_project_id"))

    op.drop_table("suggestions")
    with op.batch_alter_table("study_readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_readings_rater_id"))
        batch_op.drop_index("ix_study_readings_order")

    op.drop_table("study_readings")
    with op.batch_alter_table("suggestion_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suggestion_jobs_project_id"))

    op.drop_table("suggestion_jobs")
    with op.batch_alter_table("reader_studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reader_studies_project_id"))

    op.drop_table("reader_studies")
