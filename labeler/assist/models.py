"""The model in the loop: stored suggestions, the jobs that compute them, reader studies and their readings."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, utcnow


class Suggestion(Base):
    """One model version's answer for one image, computed by a background job (never in a request).

    ``answer`` is plain JSON: quality ``{"class", "probability", "issues": [{"name", "probability"}]}``,
    severity ``{"score", "grade"}``; ``error`` instead when the image could not be predicted (the
    suggestion is then "none for this image", the same for golden and fold images).
    """

    __tablename__ = "suggestions"
    __table_args__ = (UniqueConstraint("image_id", "model_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class SuggestionJob(Base):
    """A background computation of one model's suggestions for every image of a project."""

    __tablename__ = "suggestion_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16, validate_strings=True),
        default=JobStatus.queued,
    )
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class ReaderStudy(Base):
    """A reader study on a project's golden set: two phases (one unassisted, one assisted) per rater."""

    __tablename__ = "reader_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[str] = mapped_column(String(64))
    washout_days: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class StudyReading(Base):
    """One rater's reading of one image in one phase of a study: the item served, then its answer.

    Readings never touch ``labels``: a phase-2 reading of an image leaves the phase-1 reading and the
    rater's normal label exactly as they were.
    """

    __tablename__ = "study_readings"
    __table_args__ = (
        UniqueConstraint("study_id", "rater_id", "phase", "image_id"),
        Index("ix_study_readings_order", "study_id", "rater_id", "phase", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_studies.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    phase: Mapped[int] = mapped_column(Integer)  # 1 or 2
    position: Mapped[int] = mapped_column(Integer)
    assisted: Mapped[bool] = mapped_column(Boolean, default=False)
    model_id: Mapped[str | None] = mapped_column(String(64))  # the suggestion's model when assisted
    decision: Mapped[str | None] = mapped_column(String(32))
    icd10: Mapped[str | None] = mapped_column(String(16))
    explanations: Mapped[list[Any]] = mapped_column(default=list)
    grade: Mapped[float | None] = mapped_column(Float)
    time_spent_ms: Mapped[int] = mapped_column(Integer, default=0)
    answered_at: Mapped[datetime | None] = mapped_column()
