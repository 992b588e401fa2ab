"""Fixtures of the project tests (imported by the modules: a conftest.py here would shadow the root one)."""

from __future__ import annotations

import secrets

import pytest

from labeler.images.models import Image
from labeler.labeling.models import Label, LabelRevision


def bearer(session, user) -> dict:
    """Authorization headers with a fresh API token of the user."""
    from labeler.auth.services import create_token

    _token, raw = create_token(session, user, user, "test")
    session.flush()
    return {"Authorization": f"Bearer {raw}"}


def image_row(project_id: int) -> Image:
    sha = secrets.token_hex(32)
    return Image(
        project_id=project_id,
        sha256=sha,
        filename=f"{sha[:8]}.jpg",
        width=8,
        height=8,
        format="JPEG",
        byte_size=1,
        display_key=f"display/{sha}.jpg",
        thumb_key=f"thumbs/{sha}.jpg",
        original_key=f"originals/{sha}.jpg",
    )


def give_label(
    session, project, rater, *, grade=None, decision=None, image=None, explanations=None
) -> Label:
    """A current label (version 1, with its revision) of a fresh image, as a rater's submit leaves it."""
    if image is None:
        image = image_row(project.id)
        session.add(image)
        session.flush()
    decision = decision or ("graded" if grade is not None else "lesion")
    label = Label(
        project_id=project.id,
        rater_id=rater.id,
        image_id=image.id,
        decision=decision,
        grade=grade,
        explanations=list(explanations)
        if explanations is not None
        else (["blurry"] if decision == "cannot_assess" else []),
        version=1,
        time_spent_ms=1200,
    )
    session.add(label)
    session.flush()
    session.add(
        LabelRevision(
            label_id=label.id,
            version=1,
            author_id=rater.id,
            decision=decision,
            grade=grade,
            explanations=list(label.explanations),
            time_spent_ms=1200,
        )
    )
    session.flush()
    return label


@pytest.fixture()
def severity_team(db, make_user, make_project):
    """A lead, a rater and a severity project the lead leads (the rater a member)."""
    from labeler.projects.models import MemberRole
    from labeler.projects.services import add_member

    class Team:
        lead = make_user(None, "lead")
        rater = make_user(None, "rater")
        project = make_project(lead, protocol="severity")

    add_member(db, None, Team.project, Team.rater, MemberRole.rater)
    return Team
