"""db.built / loaded / attach_row: mapped objects built from a Core row, as a query would load them."""

from sqlalchemy import inspect, select

from labeler.db import attach_row, built
from labeler.labeling.models import Label
from labeler.projects.models import Project

_KEYS = [a.key for a in inspect(Project).column_attrs]


def _row(db, project_id):
    """The project's columns as a Core read gives them (no ORM)."""
    row = (
        db.connection()
        .execute(select(*(getattr(Project, k) for k in _KEYS)).where(Project.id == project_id))
        .one()
    )
    return dict(zip(_KEYS, row, strict=True))


def test_attach_row_adds_a_persistent_object_whose_change_is_flushed(db, make_project):
    project_id = make_project(name="Before").id
    db.commit()
    db.expunge_all()
    project = attach_row(db, Project, _row(db, project_id))
    state = inspect(project)
    assert state.persistent and not state.modified
    assert project.name == "Before" and project.settings == _row(db, project_id)["settings"]
    project.name = "After"  # a change is tracked and written as for a loaded object
    db.flush()
    assert _row(db, project_id)["name"] == "After"
    assert db.get(Project, project_id) is project  # the session's one instance of that row


def test_attach_row_overwrites_the_instance_the_session_holds(db, make_project):
    held = make_project(name="Held")
    db.flush()
    values = {**_row(db, held.id), "name": "As read"}
    held.name = "Changed, not flushed"
    assert attach_row(db, Project, values) is held
    # as a query with populate_existing: the row read wins and the change is not written
    assert held.name == "As read"
    db.flush()
    assert _row(db, held.id)["name"] == "Held"


def test_built_is_transient_and_holds_its_values(db):
    label = built(Label, {"id": None, "version": 1, "decision": "no_skin"})
    state = inspect(label)
    assert state.transient and label.version == 1 and label.decision == "no_skin"
    assert label.grade is None  # a column not given reads as unset
