"""Settings page: severity scale, non-graded answers, fusion and agreement settings, prescreen model."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import protocols
from ..auth.models import Role
from ..auth.permissions import role_required
from ..cases.units import unit_choices
from ..db import get_session
from ..errors import ValidationError, on_form_error
from ..protocols import skin_type_question
from ..protocols.severity import SCALE_SIZE, parse_number, show_number
from ..training.services import project_models
from .access import authorized_project
from .models import Project
from .services import grades_in_use, label_counts, update_settings
from .settings import (
    FUSION_METHOD_NAMES,
    QUALITY_CLASS_NAMES,
    QUEUE_ORDER_NAMES,
    read_settings,
)
from .views import bp

SETTINGS_MANAGERS = "Only the project's leads and admins change its settings."


def _project(project_id: int) -> Project:
    return authorized_project(project_id, message=SETTINGS_MANAGERS)


def _models(project: Project) -> list[dict[str, Any]]:
    protocol = protocols.get(project.protocol)
    if "prescreen_model_id" not in protocol.settings_keys:  # only a protocol with a prescreen
        return []
    config = current_app.config
    models = project_models(get_session(), config, project)
    return [m for m in models if m["kind"] == protocol.model_kind]


def _shown(project: Project, form) -> dict[str, Any]:
    """The values the form shows: what was just sent (after an error), else the stored settings."""
    s = read_settings(project.settings)
    if form is None:
        scale = [(str(x["value"]), x["name"]) for x in s.scale]
        return {
            "scale": scale + [("", "")] * (SCALE_SIZE[1] - len(scale)),
            "allow_non_graded": s.allow_non_graded,
            "method": s.fusion_method,
            "explanation_k": s.explanation_k,
            "tie_policy": s.tie_policy,
            "precedence": list(s.precedence) or list(QUALITY_CLASS_NAMES),
            "min_pair_images": s.min_pair_images,
            "min_group_images": s.min_group_images,
            "min_eval_images": s.min_eval_images,
            "prescreen_model_id": s.prescreen_model_id or "",
            "queue_order": s.queue_order,
            "case_view": s.case_view,
            "case_unit": s.case_unit,
            "case_show": ", ".join(s.case_show),
            "ask_skin_type": s.ask_skin_type,
            "mapping": {},
        }
    scale = list(zip(form.getlist("scale_value"), form.getlist("scale_name"), strict=False))
    precedence = form.getlist("precedence")
    return {
        "scale": scale + [("", "")] * (SCALE_SIZE[1] - len(scale)),
        "allow_non_graded": form.get("allow_non_graded") == "1",
        "method": form.get("method", ""),
        "explanation_k": form.get("explanation_k", ""),
        "tie_policy": form.get("tie_policy", ""),
        "precedence": precedence
        if len(precedence) == 4
        else list(s.precedence or QUALITY_CLASS_NAMES),
        "min_pair_images": form.get("min_pair_images", ""),
        "min_group_images": form.get("min_group_images", ""),
        "queue_order": form.get("queue_order", s.queue_order),
        "case_view": form.get("case_view") == "1",
        "case_unit": form.get("case_unit", s.case_unit),
        "case_show": form.get("case_show", ""),
        "ask_skin_type": form.get("ask_skin_type") == "1",
        "min_eval_images": form.get("min_eval_images", ""),
        "prescreen_model_id": form.get("prescreen_model_id", ""),
        "mapping": dict(zip(form.getlist("map_old"), form.getlist("map_new"), strict=False)),
    }


def _page(project: Project, *, error=None, status=200, form=None):
    db = get_session()
    return render_template(
        "projects/settings_page.html",
        project=project,
        protocol=protocols.get(project.protocol),
        v=_shown(project, form),
        labels=label_counts(db, project)[0],
        grades=[show_number(g) for g in grades_in_use(db, project)],
        models=_models(project),
        methods=FUSION_METHOD_NAMES,
        queue_orders=QUEUE_ORDER_NAMES,
        case_units=unit_choices(project.protocol),
        can_ask_skin_type=skin_type_question.can_ask(project.protocol),
        classes=QUALITY_CLASS_NAMES,
        max_steps=SCALE_SIZE[1],
        error=error,
        form=form,
    ), status


def _scale_from_form() -> list[dict[str, Any]]:
    """Scale rows from the form (rows with neither value nor name are left out)."""
    values, names = request.form.getlist("scale_value"), request.form.getlist("scale_name")
    steps = []
    for i, (value, name) in enumerate(zip(values, names, strict=False), start=1):
        value, name = value.strip(), name.strip()
        if not value and not name:
            continue
        if not value or not name:
            raise ValidationError(f"row {i} of the scale needs both a value and a name")
        steps.append({"value": parse_number(value, f"the value in row {i}", "scale"), "name": name})
    return steps


def _changes_from_form(project: Project) -> tuple[dict[str, Any], Any]:
    """(settings changes, grade mapping or None) from the settings form."""
    form = request.form
    fusion: dict[str, Any] = {
        "explanation_k": form.get("explanation_k", "").strip(),
        "method": form.get("method", ""),
    }
    changes: dict[str, Any] = {
        "fusion": fusion,
        "agreement": {
            "min_pair_images": form.get("min_pair_images", "").strip(),
            "min_group_images": form.get("min_group_images", "").strip(),
        },
    }
    if "min_eval_images" in form:  # a form from before this field existed keeps the stored value
        changes["agreement"]["min_eval_images"] = form["min_eval_images"].strip()
    if "queue_order" in form:
        changes["queue"] = {"order": form["queue_order"]}
    if "cases_shown" in form:  # an unticked box sends nothing: off
        changes["cases"] = {
            "view": form.get("case_view") == "1",
            "unit": form.get("case_unit", "image"),
            "show": [c.strip() for c in form.get("case_show", "").split(",") if c.strip()],
        }
    if "skin_type_question_shown" in form:  # an unticked box sends nothing: off
        changes[skin_type_question.SETTING] = form.get("ask_skin_type") == "1"
    mapping = None
    protocol = protocols.get(project.protocol)
    if protocol.has_classes:  # ties between classes, and the prescreen
        fusion["tie_policy"] = form.get("tie_policy", "")
        if fusion["tie_policy"] == "precedence":
            fusion["precedence"] = form.getlist("precedence")
        changes["prescreen_model_id"] = form.get("prescreen_model_id") or None
    elif "scale" in protocol.settings_keys:  # a scale the lead edits (severity)
        changes["scale"] = _scale_from_form()
        changes["allow_non_graded"] = form.get("allow_non_graded") == "1"
        old, new = form.getlist("map_old"), form.getlist("map_new")
        if old and form.get("confirm_migration") == "1":
            mapping = [[o, n.strip()] for o, n in zip(old, new, strict=False)]
    return changes, mapping


@bp.get("/projects/<int:project_id>/settings")
@role_required(Role.lead, Role.admin)
def settings_page(project_id: int):
    return _page(_project(project_id))


@bp.post("/projects/<int:project_id>/settings")
@role_required(Role.lead, Role.admin)
def settings_save(project_id: int):
    db = get_session()
    project = _project(project_id)
    on_form_error(
        lambda exc: _page(project, error=exc.message, status=exc.status, form=request.form)
    )
    changes, mapping = _changes_from_form(project)
    result = update_settings(
        db,
        current_user,
        project,
        changes,
        confirm_migration=request.form.get("confirm_migration") == "1",
        grade_mapping=mapping,
        models_config=current_app.config,
    )
    if not result["changed"]:
        flash("Nothing changed.")
    else:
        migrated = result["labels_migrated"]
        note = f" {migrated} labels were mapped to the new scale." if migrated else ""
        flash(f"Settings saved.{note}")
    return redirect(url_for("projects.settings_page", project_id=project.id))
