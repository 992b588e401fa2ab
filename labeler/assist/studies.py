"""Reader studies on the golden set (docs/domain.md, "Reader studies"): creating one, each rater's
phases, serving and answering readings, and the data of the report.

Design: every reading is a row of ``study_readings`` (study, phase, rater, image, answer, assisted,
model version, time), never a label. The rater's normal labels keep their meaning (one current
answer per rater and image, fused and exported as before), and a phase-2 reading cannot overwrite a
phase-1 reading because each has its own row. Each phase re-reads the rater's whole queue (golden
and fold images alike), reshuffled per phase: a list of golden images only would tell the rater
which images are golden. The report uses the golden readings; fold readings made in the assisted
phase are stored as assisted readings too.

Services take the session, an explicit actor and ``now`` (the clock, injectable for tests); they
flush, never commit.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, insert, select
from sqlalchemy.orm import Session

from .. import protocols
from ..allocation.models import QueueItem
from ..allocation.services import new_public_ids
from ..audit.services import record_event
from ..auth.models import User
from ..db import utcnow
from ..errors import Conflict, NotFound, ValidationError
from ..labeling import icd10
from ..projects.models import MemberRole, Project, ProjectMember
from ..validation import MAX_SEED, clean_int
from .models import ReaderStudy, StudyReading
from .suggestions import suggestion_view, suggestions_ready

MAX_WASHOUT_DAYS = 365
PHASES = (1, 2)


def assisted_first(seed: int, rater_id: int) -> bool:
    """Whether the rater's phase 1 is the assisted one: a seeded coin per rater."""
    return random.Random(f"reader-study:{seed}:{rater_id}:order").random() < 0.5


def phase_assisted(study: ReaderStudy, rater_id: int, phase: int) -> bool:
    return assisted_first(study.seed, rater_id) == (phase == 1)


def open_study(session: Session, project: Project) -> ReaderStudy | None:
    """The project's study in progress (at most one)."""
    return session.scalar(
        select(ReaderStudy)
        .where(ReaderStudy.project_id == project.id, ReaderStudy.closed_at.is_(None))
        .order_by(ReaderStudy.id.desc())
        .limit(1)
    )


def project_studies(session: Session, project: Project) -> list[ReaderStudy]:
    return list(
        session.scalars(
            select(ReaderStudy)
            .where(ReaderStudy.project_id == project.id)
            .order_by(ReaderStudy.id.desc())
        )
    )


def get_study(session: Session, project: Project, study_id: Any) -> ReaderStudy:
    study = session.get(ReaderStudy, study_id) if isinstance(study_id, int) else None
    if study is None or study.project_id != project.id:
        raise NotFound(f"no reader study {study_id} in this project")
    return study


def create_study(
    session: Session,
    actor: User | None,
    project: Project,
    *,
    model_id: Any,
    washout_days: Any,
    seed: Any,
    from_text: bool = False,
    now: datetime | None = None,
) -> ReaderStudy:
    """Start a reader study: both phases' reading lists for every rater with a queue, each the
    rater's images in a seeded shuffle of its own, one phase assisted by ``model_id``'s stored
    suggestions and the other not, the order drawn per rater from ``seed``."""
    now = now or utcnow()
    washout = clean_int(
        washout_days,
        "the washout period (days)",
        lo=0,
        hi=MAX_WASHOUT_DAYS,
        from_text=from_text,
        field="washout_days",
    )
    seed = clean_int(seed, "the seed", lo=0, hi=MAX_SEED, from_text=from_text, field="seed")
    if washout is None or seed is None:
        raise ValidationError("a reader study needs a washout period (days) and a seed")
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValidationError("choose the model whose suggestions are shown", field="model_id")
    model_id = model_id.strip()
    if open_study(session, project) is not None:
        raise Conflict(
            "this project already has a reader study in progress; close it first",
            code="study_open",
        )
    if not suggestions_ready(session, project.id, model_id):
        raise Conflict(
            f"the suggestions of model {model_id} are not computed for this project yet: compute "
            "them first (Suggestions on the project's Reader studies page), then start the study",
            code="suggestions_not_ready",
        )
    queues: dict[int, list[int]] = {}
    raters = select(ProjectMember.user_id).where(
        ProjectMember.project_id == project.id, ProjectMember.role == MemberRole.rater
    )
    for rater_id, image_id, golden in session.execute(
        select(QueueItem.rater_id, QueueItem.image_id, QueueItem.is_golden)
        .where(QueueItem.project_id == project.id, QueueItem.rater_id.in_(raters))
        .order_by(QueueItem.rater_id, QueueItem.image_id)
    ):
        queues.setdefault(rater_id, []).append(image_id)
    has_golden = session.scalar(
        select(func.count(QueueItem.id)).where(
            QueueItem.project_id == project.id, QueueItem.is_golden.is_(True)
        )
    )
    if not queues or not has_golden:
        raise Conflict(
            "a reader study reads the golden set: allocate the images with a golden set first",
            code="no_golden_set",
        )
    study = ReaderStudy(
        project_id=project.id,
        model_id=model_id,
        washout_days=washout,
        seed=seed,
        created_by_id=getattr(actor, "id", None),
        created_at=now,
    )
    session.add(study)
    session.flush()
    rows = []
    for rater_id, images in queues.items():
        for phase in PHASES:
            order = list(images)
            random.Random(f"reader-study:{seed}:{rater_id}:phase{phase}").shuffle(order)
            assisted = assisted_first(seed, rater_id) == (phase == 1)
            ids = new_public_ids(len(order))
            rows += [
                {
                    "public_id": ids[pos],
                    "study_id": study.id,
                    "rater_id": rater_id,
                    "image_id": image_id,
                    "phase": phase,
                    "position": pos,
                    "assisted": assisted,
                    "model_id": model_id if assisted else None,
                    "explanations": [],
                    "time_spent_ms": 0,
                }
                for pos, image_id in enumerate(order)
            ]
    session.execute(insert(StudyReading), rows)
    record_event(
        session,
        actor,
        "study.create",
        "reader_study",
        study.id,
        project_id=project.id,
        model_id=model_id,
        washout_days=washout,
        seed=seed,
        raters=len(queues),
        readings=len(rows),
    )
    session.flush()
    return study


def close_study(
    session: Session, actor: User | None, study: ReaderStudy, now: datetime | None = None
) -> ReaderStudy:
    """End the study: no more readings are served or accepted; the report stays."""
    if study.closed_at is None:
        study.closed_at = now or utcnow()
        record_event(
            session, actor, "study.close", "reader_study", study.id, project_id=study.project_id
        )
        session.flush()
    return study


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RaterPhase:
    """Where a rater stands in a study: the phase open now (None: waiting or finished)."""

    phase: int | None
    done: dict[int, int]  # readings answered per phase
    total: dict[int, int]  # readings per phase
    opens_at: datetime | None  # when phase 2 opens (set once phase 1 is finished)
    finished: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "done": {str(p): n for p, n in self.done.items()},
            "total": {str(p): n for p, n in self.total.items()},
            "phase_2_opens_at": self.opens_at.isoformat() if self.opens_at else None,
            "finished": self.finished,
        }


def rater_phase(
    session: Session, study: ReaderStudy, rater_id: int, now: datetime | None = None
) -> RaterPhase:
    """Phase 1 is open from the start; phase 2 opens ``washout_days`` after the rater's last phase-1
    answer, and not before."""
    now = _aware(now or utcnow())
    done: dict[int, int] = {1: 0, 2: 0}
    total: dict[int, int] = {1: 0, 2: 0}
    last: datetime | None = None
    for phase, n_total, n_done, latest in session.execute(
        select(
            StudyReading.phase,
            func.count(StudyReading.id),
            func.count(StudyReading.answered_at),
            func.max(StudyReading.answered_at),
        )
        .where(StudyReading.study_id == study.id, StudyReading.rater_id == rater_id)
        .group_by(StudyReading.phase)
    ):
        total[phase], done[phase] = int(n_total), int(n_done)
        if phase == 1:
            last = latest
    if not total[1] or study.closed_at is not None:
        return RaterPhase(None, done, total, None, study.closed_at is not None or not total[1])
    if done[1] < total[1]:
        return RaterPhase(1, done, total, None, False)
    opens = _aware(last) + timedelta(days=study.washout_days)
    if done[2] >= total[2]:
        return RaterPhase(None, done, total, opens, True)
    return RaterPhase(2 if now >= opens else None, done, total, opens, False)


def next_reading(
    session: Session, study: ReaderStudy, rater: User, now: datetime | None = None
) -> tuple[StudyReading | None, RaterPhase]:
    """The rater's first unanswered reading of the phase open now, by position."""
    state = rater_phase(session, study, rater.id, now)
    if state.phase is None:
        return None, state
    reading = session.scalar(
        select(StudyReading)
        .where(
            StudyReading.study_id == study.id,
            StudyReading.rater_id == rater.id,
            StudyReading.phase == state.phase,
            StudyReading.answered_at.is_(None),
        )
        .order_by(StudyReading.position)
        .limit(1)
    )
    return reading, state


def own_reading(session: Session, rater: User, public_id: str) -> tuple[StudyReading, ReaderStudy]:
    """One of the rater's readings and its study, or a plain 404."""
    row = None
    if isinstance(public_id, str) and 0 < len(public_id) <= 32:
        row = session.execute(
            select(StudyReading, ReaderStudy)
            .join(ReaderStudy, ReaderStudy.id == StudyReading.study_id)
            .where(
                StudyReading.public_id == public_id,
                StudyReading.rater_id == rater.id,
                # a rater removed from the project keeps no access to its study either
                exists().where(
                    ProjectMember.project_id == ReaderStudy.project_id,
                    ProjectMember.user_id == rater.id,
                    ProjectMember.role == MemberRole.rater,
                ),
            )
        ).first()
    if row is None:
        raise NotFound("no such reading in your reader study")
    return row[0], row[1]


def known_code(code: str) -> str | None:
    entry = icd10.lookup(code)
    return entry.code if entry else None


def answer_reading(
    session: Session,
    rater: User,
    reading: StudyReading,
    study: ReaderStudy,
    data: Mapping[str, Any],
    *,
    time_spent_ms: Any = None,
    now: datetime | None = None,
) -> StudyReading:
    """Record the rater's answer of a reading of the phase open now: validated like a label, once
    (a reading is a first impression; it is not edited afterwards)."""
    now = now or utcnow()
    state = rater_phase(session, study, rater.id, now)
    if reading.answered_at is not None:
        raise Conflict("this reading is already answered", code="reading_answered")
    if state.phase != reading.phase:
        if reading.phase == 2 and state.opens_at is not None:
            when = state.opens_at.strftime("%d %B %Y, %H:%M UTC")
            raise Conflict(
                f"the second reading opens after the washout period, on {when}",
                code="washout",
            )
        raise Conflict("this reading is not open now", code="reading_closed")
    project = session.get(Project, study.project_id)
    clean = protocols.validate_submission(
        project.protocol, project.settings or {}, data, known_code
    )
    spent = clean_int(
        time_spent_ms, "'time_spent_ms'", lo=0, hi=2**31 - 1, default=0, field="time_spent_ms"
    )
    reading.decision = clean.decision
    reading.icd10 = clean.icd10
    reading.explanations = list(clean.explanations)
    reading.grade = clean.grade
    reading.time_spent_ms = min(spent, 3600 * 1000)
    reading.answered_at = now
    session.flush()
    return reading


def reading_json(
    session: Session, reading: StudyReading, study: ReaderStudy, state: RaterPhase
) -> dict[str, Any]:
    """What a rater learns about one reading (identical keys for golden and fold images)."""
    project = session.get(Project, study.project_id)
    return {
        "id": reading.public_id,
        "phase": reading.phase,
        "position": reading.position + 1,
        "total": state.total.get(reading.phase, 0),
        "done": state.done.get(reading.phase, 0),
        "suggestion": (
            suggestion_view(session, project, reading.image_id, study.model_id)
            if reading.assisted
            else None
        ),
        "answered": reading.answered_at is not None,
    }


def study_dict(study: ReaderStudy) -> dict[str, Any]:
    return {
        "id": study.id,
        "project_id": study.project_id,
        "model_id": study.model_id,
        "washout_days": study.washout_days,
        "seed": study.seed,
        "created_at": study.created_at.isoformat(),
        "closed_at": study.closed_at.isoformat() if study.closed_at else None,
    }


def studies_in_progress(session: Session, project_ids: list[int]) -> set[int]:
    """Which of these projects have a reader study in progress (one query; the rater's home page)."""
    if not project_ids:
        return set()
    return set(
        session.scalars(
            select(ReaderStudy.project_id).where(
                ReaderStudy.project_id.in_(project_ids), ReaderStudy.closed_at.is_(None)
            )
        )
    )
