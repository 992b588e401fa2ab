"""A training run: one model trained from a project's labels, by a background worker."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, utcnow


class RunStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"  # a lead stopped it (labeler/training/control.py)


class ModelKind(str, enum.Enum):
    quality = "quality"
    severity = "severity"


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ModelKind] = mapped_column(
        Enum(ModelKind, native_enum=False, length=16, validate_strings=True)
    )
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, native_enum=False, length=16, validate_strings=True),
        default=RunStatus.queued,
    )
    seed: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int | None] = mapped_column(Integer)
    # the quality model's last N backbone blocks trained with the heads (0: the frozen backbone)
    fine_tune_blocks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stage: Mapped[str | None] = mapped_column(String(32))
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    model_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    # the worker's last sign of life while it runs (every ML_HEARTBEAT_S): a run whose heartbeat is
    # older than ML_HEARTBEAT_TIMEOUT_S reads failed, whatever host its worker was on
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    host: Mapped[str | None] = mapped_column(String(255))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
