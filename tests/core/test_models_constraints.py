"""Model constraints where the domain says 'one per'."""

import pytest
from sqlalchemy.exc import IntegrityError

from labeler.allocation.models import QueueItem
from labeler.images.models import Image
from labeler.labeling.models import Label, LabelRevision


def _image(db, project, sha="a" * 64):
    im = Image(
        project_id=project.id,
        sha256=sha,
        filename="x.jpg",
        width=10,
        height=10,
        format="JPEG",
        byte_size=1,
        display_key="d",
        thumb_key="t",
        original_key="o",
    )
    db.add(im)
    db.flush()
    return im


def _assert_violation(db, obj):
    sp = db.begin_nested()
    db.add(obj)
    with pytest.raises(IntegrityError):
        db.flush()
    sp.rollback()


def test_one_image_per_hash_per_project(db, make_project):
    p1, p2 = make_project(), make_project()
    _image(db, p1)
    _image(db, p2)  # the same bytes may live in another project
    _assert_violation(
        db,
        Image(
            project_id=p1.id,
            sha256="a" * 64,
            filename="y.jpg",
            width=1,
            height=1,
            format="JPEG",
            byte_size=1,
            display_key="d",
            thumb_key="t",
            original_key="o",
        ),
    )


def test_one_current_label_per_rater_and_image(db, make_project, make_user):
    p = make_project()
    im = _image(db, p)
    r = make_user()
    db.add(Label(project_id=p.id, rater_id=r.id, image_id=im.id, decision="lesion"))
    db.flush()
    _assert_violation(db, Label(project_id=p.id, rater_id=r.id, image_id=im.id, decision="no_skin"))


def test_one_queue_item_per_rater_and_image(db, make_project, make_user):
    p = make_project()
    im = _image(db, p)
    r = make_user()
    db.add(QueueItem(public_id="q1", project_id=p.id, rater_id=r.id, image_id=im.id, position=0))
    db.flush()
    _assert_violation(
        db, QueueItem(public_id="q2", project_id=p.id, rater_id=r.id, image_id=im.id, position=1)
    )


def test_revision_versions_unique_per_label(db, make_project, make_user):
    p = make_project()
    im = _image(db, p)
    r = make_user()
    label = Label(project_id=p.id, rater_id=r.id, image_id=im.id, decision="lesion")
    db.add(label)
    db.flush()
    db.add(LabelRevision(label_id=label.id, version=1, author_id=r.id, decision="lesion"))
    db.flush()
    _assert_violation(
        db, LabelRevision(label_id=label.id, version=1, author_id=r.id, decision="no_skin")
    )


def test_user_email_unique_and_roles(db, make_user):
    from labeler.errors import Conflict

    u = make_user("Dr.Who@Example.org", "rater", "lead")
    assert u.email == "dr.who@example.org"
    assert {r.value for r in u.roles} == {"rater", "lead"}
    from labeler.auth.services import add_user

    with pytest.raises(Conflict):
        add_user(db, None, "dr.who@example.org", "x", set())


def test_label_referenced_image_cannot_be_deleted(db, make_project, make_user):
    """Labels are never lost by deleting their image (RESTRICT)."""
    p = make_project()
    im = _image(db, p)
    r = make_user()
    db.add(Label(project_id=p.id, rater_id=r.id, image_id=im.id, decision="lesion"))
    db.flush()
    sp = db.begin_nested()
    db.delete(im)
    with pytest.raises(IntegrityError):
        db.flush()
    sp.rollback()
