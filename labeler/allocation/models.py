"""Allocations, the golden set and per-rater queue items."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, utcnow


class Allocation(Base):
    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), unique=True
    )
    seed: Mapped[int] = mapped_column(Integer)
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    golden_size: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class GoldenImage(Base):
    __tablename__ = "golden_images"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))


class ItemStatus(str, enum.Enum):
    pending = "pending"
    skipped = "skipped"
    done = "done"


class QueueItem(Base):
    __tablename__ = "queue_items"
    __table_args__ = (
        UniqueConstraint("rater_id", "image_id"),
        # a rater's next item: WHERE rater_id, project_id, status ORDER BY position LIMIT 1
        Index("ix_queue_items_queue_order", "rater_id", "project_id", "status", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    is_golden: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ItemStatus] = mapped_column(
        Enum(ItemStatus, native_enum=False, length=16, validate_strings=True),
        default=ItemStatus.pending,
    )
    skip_reason: Mapped[str | None] = mapped_column(Text)
    # first time the rater was served this item (queue/next, the page, the API); a rebalance moves
    # only items never shown, so that nothing leaves a screen and the queue reveals nothing
    shown_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_done(self) -> bool:
        return self.status is ItemStatus.done


class QueueTally(Base):
    """How many items a rater has in a project's queue, and how many are done: what every served item
    carries as its queue's size and progress, read by primary key instead of counted (a count reads
    the rater's whole queue index, once per served item).

    Kept by the database itself: triggers on queue_items (migrations/versions/..._0012_queue_tallies)
    count every insert, delete and change of status, rater or project, whatever statement makes it
    (allocation, rebalance, labeling, a cascade), in the same transaction. Nothing in the app writes it.
    On PostgreSQL inserts and deletes are tallied once per statement (many row triggers updating one
    tally row in one transaction slow down quadratically): an allocation's items go in as one
    statement (services.insert_items); status and rater change one item at a time in the app.
    """

    __tablename__ = "queue_tallies"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    rater_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer)
