"""Report services: agreement for a scope, rater progress, tie adjudication."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from .. import events, metrics, protocols
from ..allocation.models import ItemStatus, QueueItem
from ..audit.services import record_event
from ..auth.models import User
from ..cases.grouping import load_unit_matrix
from ..db import utcnow
from ..errors import Conflict, NotFound, ValidationError
from ..images.models import Image
from ..labeling.models import Adjudication, Label
from ..metrics.bootstrap import DEFAULT_RESAMPLES
from ..ml.comparison import GoldenPanel
from ..projects.models import Project
from ..protocols.explanations import EXPLANATION_CODES
from ..protocols.quality import QUALITY_DECISIONS
from ..validation import clean_id, clean_text
from .figures import agreement_figures, fuse, min_pair_images
from .intervals import resampling_groups
from .matrix import SCOPES, assisted_clause, load_label_matrix


def check_scope(scope: str | None) -> str:
    scope = scope or "all"
    if scope not in SCOPES:
        raise ValidationError(
            f"scope must be one of {', '.join(SCOPES)}", status=400, code="bad_scope"
        )
    return scope


# The dashboard draws fewer resamples than the JSON and exports (2000) to stay fast; it says so.
DASHBOARD_RESAMPLES = 1000


def project_agreement(
    session: Session,
    project: Project,
    scope: str = "all",
    resamples: int = DEFAULT_RESAMPLES,
    assisted: bool | None = None,
) -> dict[str, Any]:
    """All agreement figures of a project for a scope (all / golden / fold), with intervals;
    a per-case project counts cases (labeler/cases/grouping.py). ``assisted``: only the labels
    made with (True) or without (False) the model's suggestion shown (pre-labeling)."""
    body = agreement_figures(
        load_unit_matrix(session, project, assisted)[0],  # one row per case in a per-case project
        project.settings or {},
        check_scope(scope),
        resamples,
    )
    body["assisted"] = assisted_summary(session, project, assisted)
    return body


def assisted_summary(session: Session, project: Project, assisted: bool | None) -> dict[str, Any]:
    """How many of the labels behind the figures were made with the model's suggestion shown, and
    the sentence that says so wherever such figures are shown."""
    total, with_suggestion = session.execute(
        select(func.count(Label.id), func.count(Label.id).filter(Label.assisted.is_(True))).where(
            Label.project_id == project.id, *assisted_clause(assisted)
        )
    ).one()
    note = None
    if with_suggestion:
        note = (
            f"{with_suggestion} of the {total} labels behind these figures were made with the "
            "model's suggestions shown (pre-labeling)"
        )
    return {
        "filter": None if assisted is None else int(assisted),
        "labels": int(total),
        "assisted_labels": int(with_suggestion),
        "note": note,
    }


def golden_panel(session: Session, project: Project) -> GoldenPanel:
    """The raters' current golden-set labels for the paired model-versus-raters bootstrap."""
    m = load_label_matrix(session, project)
    rows = m.golden
    common = {
        "image_ids": m.image_ids[rows],
        "groups": resampling_groups(m, rows),
        "min_co_labeled": min_pair_images(project.settings or {}),
    }
    if protocols.get(project.protocol).has_classes:
        return GoldenPanel(
            class_names=tuple(QUALITY_DECISIONS),
            classes=m.classes[rows],
            explanation_names=tuple(EXPLANATION_CODES),
            explanations=m.explanations[rows],
            **common,
        )
    return GoldenPanel(grades=m.grades[rows], **common)


def rater_progress(session: Session, project: Project) -> list[dict[str, Any]]:
    """Per rater: queue items, done, skipped, and the time spent labeling."""
    done = func.sum(case((QueueItem.status == ItemStatus.done, 1), else_=0))
    skipped = func.sum(case((QueueItem.status == ItemStatus.skipped, 1), else_=0))
    rows = session.execute(
        select(User.id, User.name, User.email, func.count(QueueItem.id), done, skipped)
        .join(QueueItem, QueueItem.rater_id == User.id)
        .where(QueueItem.project_id == project.id)
        .group_by(User.id, User.name, User.email)
        .order_by(User.name)
    ).all()
    spent = dict(
        session.execute(
            select(Label.rater_id, func.sum(Label.time_spent_ms))
            .where(Label.project_id == project.id)
            .group_by(Label.rater_id)
        ).all()
    )
    return [
        {
            "rater_id": uid,
            "name": name,
            "email": email,
            "total": int(total),
            "done": int(d or 0),
            "skipped": int(s or 0),
            "minutes": round((spent.get(uid) or 0) / 60000, 1),
        }
        for uid, name, email, total, d, s in rows
    ]


def tie_list(
    session: Session, project: Project, *, flagged_only: bool = False
) -> list[dict[str, Any]]:
    """Tied images, and images whose adjudication is outdated: votes, tied classes, status, and
    whether a rater flagged the image (unsure, or a note to the leads); flagged_only keeps those."""
    if not protocols.get(project.protocol).has_classes:  # ties between classes only
        return []
    m = load_label_matrix(session, project)
    fusion = fuse(m, project.settings or {})
    listed = fusion.is_tie | fusion.adjudication_outdated
    if flagged_only:
        listed &= m.scope_rows("flagged")
    idx = [int(i) for i in listed.nonzero()[0]]
    return [
        {
            "image_id": int(m.image_ids[i]),
            "tied": [c for k, c in enumerate(QUALITY_DECISIONS) if fusion.tied[i, k]],
            "votes": {c: int(fusion.votes[i, k]) for k, c in enumerate(QUALITY_DECISIONS)},
            "adjudication": QUALITY_DECISIONS[m.adjudication[i]]
            if m.adjudication[i] >= 0
            else None,
            "status": tie_status(fusion, i),
            "fused_class": QUALITY_DECISIONS[fusion.fused[i]] if fusion.fused[i] >= 0 else None,
            "golden": bool(m.golden[i]),
            "flagged": bool(m.scope_rows("flagged")[i]),
        }
        for i in idx
    ]


def tie_status(fusion: metrics.QualityFusion, i: int) -> str:
    """What the ties page says about image i: adjudicated, adjudication outdated, or how it stands."""
    if fusion.adjudication_outdated[i]:
        return "adjudication outdated"
    return {
        metrics.Resolution.ADJUDICATED: "adjudicated",
        metrics.Resolution.PRECEDENCE: "resolved by precedence",
    }.get(int(fusion.resolution[i]), "unresolved")


def adjudicate(
    session: Session,
    actor: User,
    project: Project,
    image_id: int,
    decision: str,
    note: str | None = None,
) -> Adjudication:
    """Record a lead's decision for a tied image (one per image; a new decision replaces it, audited)."""
    if not protocols.get(project.protocol).has_classes:
        raise ValidationError("only quality projects have class ties to adjudicate")
    image_id = clean_id(image_id, "image_id")
    note = clean_text(note, "the note", max_len=2000, collapse=False)
    image = session.get(Image, image_id)
    if image is None or image.project_id != project.id:
        raise NotFound(f"no image {image_id} in this project")
    if decision not in QUALITY_DECISIONS:
        raise ValidationError(f"decision must be one of {', '.join(QUALITY_DECISIONS)}")
    decisions = session.scalars(select(Label.decision).where(Label.image_id == image.id)).all()
    votes = {c: decisions.count(c) for c in QUALITY_DECISIONS}
    top = max(votes.values())
    tied = [c for c, v in votes.items() if v == top and top > 0]
    if len(tied) < 2:
        raise Conflict("this image is not tied: its fused class comes from a plurality of votes")
    if decision not in tied:
        raise ValidationError(f"choose one of the tied classes: {', '.join(tied)}")
    adj = session.scalar(
        select(Adjudication).where(
            Adjudication.project_id == project.id, Adjudication.image_id == image.id
        )
    )
    previous = adj.decision if adj else None
    if adj is None:
        adj = Adjudication(project_id=project.id, image_id=image.id, decision=decision)
        session.add(adj)
    adj.decision, adj.note, adj.decided_by_id = (
        decision,
        note,
        actor.id,
    )
    adj.decided_at = utcnow()
    session.flush()
    record_event(
        session,
        actor,
        "adjudication.set",
        "image",
        image.id,
        project_id=project.id,
        decision=decision,
        previous=previous,
        tied=tied,
    )
    events.tie_adjudicated(session, adj, previous is not None)
    return adj
