"""Labels (one current label per rater and image) with an append-only revision history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, utcnow


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("rater_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    decision: Mapped[str] = mapped_column(String(32))
    icd10: Mapped[str | None] = mapped_column(String(16))
    icd10_missing_text: Mapped[str | None] = mapped_column(Text)
    explanations: Mapped[list[Any]] = mapped_column(default=list)
    grade: Mapped[float | None] = mapped_column(Float)
    # the optional second question (projects with the "also ask skin type" setting): Fitzpatrick
    # 1-6, 0 for "cannot assess", NULL when not asked (labeler.protocols.skin_type)
    skin_type: Mapped[int | None] = mapped_column(SmallInteger)
    # made while the model's suggestion was shown (pre-labeling; labeler.assist), and by which model
    assisted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    suggestion_model_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    time_spent_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    submission_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelRevision(Base):
    __tablename__ = "label_revisions"
    __table_args__ = (UniqueConstraint("label_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="RESTRICT"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    decision: Mapped[str] = mapped_column(String(32))
    icd10: Mapped[str | None] = mapped_column(String(16))
    icd10_missing_text: Mapped[str | None] = mapped_column(Text)
    explanations: Mapped[list[Any]] = mapped_column(default=list)
    grade: Mapped[float | None] = mapped_column(Float)
    skin_type: Mapped[int | None] = mapped_column(SmallInteger)  # as Label.skin_type
    assisted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    suggestion_model_id: Mapped[str | None] = mapped_column(String(64))  # as on Label
    time_spent_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    submission_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Adjudication(Base):
    __tablename__ = "adjudications"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class ItemFlag(Base):
    """A rater's "unsure" mark and note to the project's leads on one image, and a lead's answer.

    One per (rater, image), like a label; only that rater and the project's leads ever read it.
    """

    __tablename__ = "item_flags"
    __table_args__ = (UniqueConstraint("rater_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    unsure: Mapped[bool] = mapped_column(default=False)
    comment: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
