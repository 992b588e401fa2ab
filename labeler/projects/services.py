"""Creating projects, listing what a user may see, project membership and project settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import protocols
from ..allocation.queue import lock_project_queues
from ..assist.jobs import check_model
from ..audit.services import record_event
from ..auth.models import Role, User
from ..db import utcnow
from ..errors import Conflict, Forbidden, NotFound, ValidationError
from ..labeling.models import Label, LabelRevision
from ..protocols.severity import NON_GRADED, parse_number, show_number
from ..training.services import set_prescreen_model
from ..validation import clean_text
from .models import MemberRole, Project, ProjectMember, Protocol
from .settings import changed_keys, default_settings, merge_settings


def parse_protocol(value: str | None) -> Protocol:
    try:
        return Protocol((value or "").strip().lower())
    except ValueError:
        names = ", ".join(
            f"'{name}' ({p.title})"
            for name, p in zip(protocols.names(), protocols.all(), strict=True)
        )
        raise ValidationError(f"protocol must be one of {names}", field="protocol") from None


def create_project(
    session: Session, actor: User | None, name: str, protocol: Protocol | str
) -> Project:
    """Create a project; its creator (a lead) becomes one of its leads."""
    name = clean_text(name, "the project name", max_len=200, required=True)
    if actor is not None and not actor.has_role(Role.lead, Role.admin):
        raise Forbidden("only leads and admins create projects")
    protocol = protocol if isinstance(protocol, Protocol) else parse_protocol(protocol)
    if session.scalar(select(Project.id).where(func.lower(Project.name) == name.lower())):
        raise Conflict(f"a project named {name!r} already exists")
    project = Project(
        name=name,
        protocol=protocol,
        settings=default_settings(protocol),
        created_by_id=actor.id if actor else None,
    )
    session.add(project)
    session.flush()
    if actor is not None and actor.has_role(Role.lead):
        add_member(session, actor, project, actor, MemberRole.lead)
    record_event(
        session,
        actor,
        "project.create",
        "project",
        project.id,
        project_id=project.id,
        name=name,
        protocol=protocol.value,
    )
    return project


def add_member(
    session: Session, actor: User | None, project: Project, user: User, role: MemberRole
) -> None:
    """Make a user a lead or rater of a project (idempotent, audited)."""
    if user.id in project.member_ids(role):
        return
    if role is MemberRole.lead and not user.has_role(Role.lead, Role.admin):
        raise ValidationError(f"{user.email} does not hold the lead role")
    if role is MemberRole.rater and not user.has_role(Role.rater):
        raise ValidationError(f"{user.email} does not hold the rater role")
    project.members.append(ProjectMember(user_id=user.id, role=role))
    session.flush()
    record_event(
        session,
        actor,
        "project.member_add",
        "project",
        project.id,
        project_id=project.id,
        user_id=user.id,
        role=role.value,
    )


def remove_member(
    session: Session, actor: User | None, project: Project, user: User, role: MemberRole
) -> None:
    """Take a user's lead or rater role in a project away (idempotent, audited); their labels stay."""
    member = next((m for m in project.members if m.user_id == user.id and m.role is role), None)
    if member is None:
        return
    project.members.remove(member)
    session.flush()
    record_event(
        session,
        actor,
        "project.member_remove",
        "project",
        project.id,
        project_id=project.id,
        user_id=user.id,
        role=role.value,
    )


def visible_projects(session: Session, user: User) -> list[Project]:
    """Projects the user may open: all for admins, otherwise those they lead or label."""
    stmt = select(Project).order_by(Project.name)
    if not user.has_role(Role.admin):
        stmt = stmt.where(
            Project.id.in_(select(ProjectMember.project_id).where(ProjectMember.user_id == user.id))
        )
    return list(session.scalars(stmt))


def get_project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    return project


def find_project(session: Session, ref: str) -> Project:
    """A project by id or by exact name (CLI)."""
    if ref.isdigit():
        return get_project(session, int(ref))
    project = session.scalar(select(Project).where(Project.name == ref))
    if project is None:
        raise NotFound(f"no project named {ref!r}")
    return project


# -- settings -------------------------------------------------------------------------------------


def grades_in_use(session: Session, project: Project) -> list[float]:
    """The distinct grades of the project's current labels."""
    stmt = (
        select(Label.grade)
        .where(Label.project_id == project.id, Label.grade.is_not(None))
        .distinct()
    )
    return sorted(float(g) for g in session.scalars(stmt))


def label_counts(session: Session, project: Project) -> tuple[int, int]:
    """(current labels, current non-graded labels) of the project."""
    total, non_graded = session.execute(
        select(
            func.count(Label.id),
            func.count(Label.id).filter(Label.decision.in_(NON_GRADED)),
        ).where(Label.project_id == project.id)
    ).one()
    return int(total or 0), int(non_graded or 0)


def parse_grade_mapping(raw: Any) -> dict[float, float]:
    """{old grade: new grade} from a JSON object ({"1": 0}) or a list of [old, new] pairs."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in raw):
        pairs = [tuple(p) for p in raw]
    else:
        raise ValidationError(
            '\'grade_mapping\' must map each old grade to a new one, e.g. {"1": 0, "2": 1}',
            field="grade_mapping",
        )
    mapping: dict[float, float] = {}
    for old, new in pairs:
        key = float(parse_number(old, "an old grade of the mapping", "grade_mapping"))
        mapping[key] = float(parse_number(new, f"the new grade for {old}", "grade_mapping"))
    return mapping


def _check_reading_changes(
    session: Session,
    project: Project,
    changed: list[str],
    new: dict[str, Any],
    *,
    confirm_migration: bool,
    grade_mapping: dict[float, float] | None,
) -> dict[float, float] | None:
    """The rules for settings that change how existing labels are read (README "Project settings").

    Returns the grade mapping to apply to the current labels, or None when no label changes.
    """
    total, non_graded = label_counts(session, project)
    if "cases.unit" in changed and total:
        # a per-case label is one answer written on every photo of the case: labels given per photo
        # cannot be read as per-case answers afterwards, nor the other way round
        raise Conflict(
            f"the project has {total} labels: what one answer labels (a photo or a whole case) "
            "can only change before labeling starts",
            code="case_unit_labels",
            labels=total,
        )
    if "allow_non_graded" in changed and total:
        if not new["allow_non_graded"] and non_graded:
            raise Conflict(
                f"{non_graded} current labels are non-graded answers ('not acne' or 'cannot "
                "assess'); they have no grade to map to, so non-graded answers stay allowed "
                "until the raters change those labels",
                code="non_graded_labels",
                non_graded_labels=non_graded,
            )
        if not confirm_migration:
            raise Conflict(
                f"the project has {total} labels: confirm the change of the non-graded answers "
                "(the labels already given stay as they are)",
                code="confirm_migration",
                labels=total,
            )
    if "scale" not in changed:
        return None
    in_use = grades_in_use(session, project)
    if not in_use:
        return None
    shown = ", ".join(show_number(g) for g in in_use)
    if not confirm_migration or grade_mapping is None:
        raise Conflict(
            f"labels already carry the grades {shown}: changing the scale needs a mapping of "
            "each of these grades to a value of the new scale and your confirmation; every "
            "label whose grade changes gets a new version",
            code="confirm_migration",
            grades_in_use=in_use,
        )
    missing = [g for g in in_use if g not in grade_mapping]
    if missing:
        raise ValidationError(
            f"the grade mapping must say what becomes of grade "
            f"{', '.join(show_number(g) for g in missing)} (in use by current labels)",
            field="grade_mapping",
        )
    values = {float(s["value"]) for s in new["scale"]}
    off = sorted({grade_mapping[g] for g in in_use} - values)
    if off:
        raise ValidationError(
            f"the grade mapping leads to {', '.join(show_number(g) for g in off)}, which is not on "
            "the new scale",
            field="grade_mapping",
        )
    return {g: grade_mapping[g] for g in in_use}


def _migrate_grades(
    session: Session, actor: User | None, project: Project, mapping: dict[float, float]
) -> int:
    """Map every current label's grade; each changed label gets a new version authored by the actor."""
    if actor is None:
        raise ValidationError(
            "a scale migration changes labels: it needs a person (a lead or admin) to author "
            "the new label versions"
        )
    labels = session.scalars(
        select(Label)
        .where(Label.project_id == project.id, Label.grade.is_not(None))
        .order_by(Label.id)
        .with_for_update()
    ).all()
    now = utcnow()
    changed = 0
    for label in labels:
        new_grade = mapping.get(float(label.grade), float(label.grade))
        if new_grade == float(label.grade):
            continue
        label.grade = new_grade
        label.version += 1
        label.updated_at = now
        label.submission_id = None
        session.add(
            LabelRevision(
                label_id=label.id,
                version=label.version,
                author_id=actor.id,
                decision=label.decision,
                icd10=label.icd10,
                icd10_missing_text=label.icd10_missing_text,
                explanations=list(label.explanations or []),
                grade=new_grade,
                time_spent_ms=0,
                created_at=now,
            )
        )
        changed += 1
    session.flush()
    return changed


def update_settings(
    session: Session,
    actor: User | None,
    project: Project,
    changes: Any,
    *,
    confirm_migration: bool = False,
    grade_mapping: Any = None,
    models_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Change some of a project's settings: validated, audited, with the label-reading rules.

    The scale and the non-graded answers change how existing labels are read: once labels exist a
    change needs ``confirm_migration`` (and, for the scale, a ``grade_mapping`` of every grade in
    use); fusion and agreement settings apply to every figure computed afterwards (nothing is
    stored). ``models_config`` (the app config) is needed to check a prescreen model.
    """
    # two leads saving at once: the second waits and compares against what the first saved
    session.refresh(project, attribute_names=["settings"], with_for_update=True)
    before = {**default_settings(project.protocol), **(project.settings or {})}
    new = merge_settings(project.protocol, project.settings or {}, changes)
    changed = changed_keys(before, new)
    mapping = None if grade_mapping is None else parse_grade_mapping(grade_mapping)
    if mapping is not None and "scale" not in changed:
        if any(old != new for old, new in mapping.items()):
            raise ValidationError(
                "a grade mapping goes with a change of the scale, and the scale is unchanged",
                field="grade_mapping",
            )
        mapping = None  # the settings page sends the identity mapping with every save
    if not changed:
        return {"changed": [], "labels_migrated": 0}
    if {"scale", "allow_non_graded", "cases.unit"} & set(changed):
        # how labels are read changes: no label is submitted while the labels are counted and
        # migrated (submits hold the project's queue lock shared; once this commits, they read the new
        # settings under it), so none is validated against the old scale and written after the migration
        lock_project_queues(session, project.id, exclusive=True)
    mapping = _check_reading_changes(
        session,
        project,
        changed,
        new,
        confirm_migration=bool(confirm_migration),
        grade_mapping=mapping,
    )
    if "prescreen_model_id" in changed:
        set_prescreen_model(session, actor, project, new["prescreen_model_id"], models_config or {})
    if "suggestions_model_id" in changed and new["suggestions_model_id"]:
        check_model(models_config or {}, project, new["suggestions_model_id"])
    migrated = _migrate_grades(session, actor, project, mapping) if mapping else 0
    project.settings = new
    session.flush()
    record_event(
        session,
        actor,
        "project.settings",
        "project",
        project.id,
        project_id=project.id,
        changed=changed,
        before={k: _dotted(before, k) for k in changed},
        after={k: _dotted(new, k) for k in changed},
        grade_mapping=None if mapping is None else {show_number(k): v for k, v in mapping.items()},
        labels_migrated=migrated,
    )
    return {"changed": changed, "labels_migrated": migrated}


def _dotted(settings: Mapping[str, Any], key: str) -> Any:
    section, _, name = key.partition(".")
    value = settings.get(section)
    return (value or {}).get(name) if name else value
