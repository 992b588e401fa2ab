"""Project settings: validation in one place, the service's label-reading rules, the PATCH API."""

# ruff: noqa: F811  (fixtures imported from projects_fixtures are used as arguments)

from __future__ import annotations

import pytest
from projects_fixtures import bearer, give_label, severity_team  # noqa: F401  (fixtures)
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from labeler.audit.models import AuditEvent
from labeler.errors import Conflict, ValidationError
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.services import update_settings
from labeler.projects.settings import (
    DEFAULT_AGREEMENT,
    DEFAULT_FUSION,
    DEFAULT_SEVERITY_SCALE,
    default_settings,
    merge_settings,
    read_settings,
)
from labeler.protocols.quality import QUALITY_DECISIONS

ZERO_TO_FOUR = [
    {"value": 0, "name": "Clear"},
    {"value": 1, "name": "Almost clear"},
    {"value": 2, "name": "Mild"},
    {"value": 3, "name": "Moderate"},
    {"value": 4, "name": "Severe"},
]


def events(db, action):
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


# -- pure: defaults, reading, validation ----------------------------------------------------------


def test_reading_fills_defaults_for_projects_stored_before_a_key_existed():
    legacy = {"fusion": {"tie_policy": "unresolved", "precedence": [], "explanation_k": 2}}
    s = read_settings(legacy)
    assert s.explanation_k == 2  # stored value wins
    assert s.fusion_method == DEFAULT_FUSION["method"] == "plurality"
    assert s.min_pair_images == DEFAULT_AGREEMENT["min_pair_images"] == 1
    assert s.min_group_images == DEFAULT_AGREEMENT["min_group_images"] == 30
    assert [x["value"] for x in s.scale] == [x["value"] for x in DEFAULT_SEVERITY_SCALE]
    assert read_settings(None) == read_settings(default_settings("quality"))


def test_the_api_shows_the_defaults_of_a_project_stored_before_they_existed(
    db, client, make_user, make_project
):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="quality")
    project.settings = {
        "fusion": {"tie_policy": "unresolved", "precedence": [], "explanation_k": 2}
    }
    db.flush()
    shown = client.get(f"/api/v1/projects/{project.id}", headers=bearer(db, lead)).json["settings"]
    assert shown["fusion"] == {**DEFAULT_FUSION, "explanation_k": 2}
    assert shown["agreement"] == DEFAULT_AGREEMENT


def test_merge_keeps_the_other_keys_of_a_section():
    current = merge_settings("quality", {}, {"fusion": {"explanation_k": 3}})
    new = merge_settings("quality", current, {"fusion": {"method": "dawid_skene"}})
    assert new["fusion"]["explanation_k"] == 3 and new["fusion"]["method"] == "dawid_skene"
    assert new["agreement"] == DEFAULT_AGREEMENT


def test_scale_values_are_kept_as_people_write_them():
    new = merge_settings(
        "severity",
        {},
        {"scale": [{"value": "0", "name": " None "}, {"value": 1.5, "name": "Some"}]},
    )
    assert new["scale"] == [{"value": 0, "name": "None"}, {"value": 1.5, "name": "Some"}]


BAD = [
    ("severity", {"scale": [{"value": 2, "name": "A"}, {"value": 1, "name": "B"}]}, "ascend"),
    ("severity", {"scale": [{"value": 1, "name": "A"}, {"value": 1, "name": "B"}]}, "ascend"),
    ("severity", {"scale": [{"value": 1, "name": "A"}, {"value": 2, "name": "a"}]}, "same name"),
    ("severity", {"scale": [{"value": 1, "name": "Only"}]}, "2 to 11 steps"),
    ("severity", {"scale": [{"value": i, "name": f"g{i}"} for i in range(12)]}, "2 to 11"),
    ("severity", {"scale": [{"value": "x", "name": "A"}, {"value": 2, "name": "B"}]}, "number"),
    ("severity", {"scale": [{"value": True, "name": "A"}, {"value": 2, "name": "B"}]}, "number"),
    ("severity", {"scale": [{"value": 1, "name": " "}, {"value": 2, "name": "B"}]}, "name of 1"),
    ("severity", {"scale": [{"value": 1}, {"value": 2, "name": "B"}]}, "{value, name}"),
    ("severity", {"scale": "1-5"}, "list of steps"),
    (
        "severity",
        {"scale": [{"value": 1e308, "name": "A"}, {"value": 1.7e308, "name": "B"}]},
        "1,000,000",
    ),
    ("severity", {"scale": [{"value": -2e6, "name": "A"}, {"value": 0, "name": "B"}]}, "1,000,000"),
    ("severity", {"allow_non_graded": "yes"}, "true or false"),
    ("severity", {"fusion": {"tie_policy": "precedence"}}, "no ties to break"),
    ("severity", {"prescreen_model_id": "m"}, "quality projects"),
    ("quality", {"scale": ZERO_TO_FOUR}, "severity projects"),
    ("quality", {"fusion": {"explanation_k": 0}}, "from 1 to 50"),
    ("quality", {"fusion": {"explanation_k": "two"}}, "whole number"),
    ("quality", {"fusion": {"explanation_k": 2.5}}, "whole number"),
    ("quality", {"fusion": {"method": "majority"}}, "plurality, dawid_skene"),
    ("quality", {"fusion": {"tie_policy": "coin"}}, "'unresolved'"),
    (
        "quality",
        {"fusion": {"tie_policy": "precedence", "precedence": ["lesion", "no_skin"]}},
        "each of the four classes",
    ),
    ("quality", {"fusion": {"weights": 1}}, "unknown setting in 'fusion'"),
    ("quality", {"agreement": {"min_pair_images": 0}}, "from 1 to"),
    ("quality", {"agreement": {"min_group_images": -5}}, "from 1 to"),
    ("quality", {"agreement": 3}, "must be an object"),
    ("quality", {"colour": "blue"}, "unknown setting 'colour'"),
    ("quality", ["fusion"], "object of the settings"),
]


@pytest.mark.parametrize(("protocol", "changes", "fragment"), BAD)
def test_invalid_settings_are_refused_with_a_clear_message(protocol, changes, fragment):
    with pytest.raises(ValidationError) as err:
        merge_settings(protocol, default_settings(protocol), changes)
    assert fragment in err.value.message
    assert err.value.status == 422


def test_a_full_precedence_order_is_accepted():
    order = ["poor_quality", "lesion", "healthy_skin", "no_skin"]
    new = merge_settings(
        "quality", {}, {"fusion": {"tie_policy": "precedence", "precedence": order}}
    )
    assert new["fusion"]["precedence"] == order
    assert sorted(order) == sorted(QUALITY_DECISIONS)


# -- the service: rules once labels exist ---------------------------------------------------------


def test_scale_changes_freely_before_labels_exist_and_is_audited(db, severity_team):
    t = severity_team
    result = update_settings(db, t.lead, t.project, {"scale": ZERO_TO_FOUR})
    assert result == {"changed": ["scale"], "labels_migrated": 0}
    assert t.project.settings["scale"] == ZERO_TO_FOUR
    (event,) = events(db, "project.settings")
    assert event.actor_id == t.lead.id and event.project_id == t.project.id
    assert event.details["before"]["scale"][0] == {"value": 1, "name": "Clear"}
    assert event.details["after"]["scale"][0] == {"value": 0, "name": "Clear"}


def test_saving_unchanged_settings_records_nothing(db, severity_team):
    t = severity_team
    result = update_settings(db, t.lead, t.project, {"scale": DEFAULT_SEVERITY_SCALE})
    assert result["changed"] == []
    assert events(db, "project.settings") == []


def test_scale_change_is_refused_once_grades_exist_without_confirmation(db, severity_team):
    t = severity_team
    give_label(db, t.project, t.rater, grade=2.0)
    give_label(db, t.project, t.rater, grade=5.0)
    with pytest.raises(Conflict) as err:
        update_settings(db, t.lead, t.project, {"scale": ZERO_TO_FOUR})
    assert err.value.status == 409 and err.value.code == "confirm_migration"
    assert err.value.extra["grades_in_use"] == [2.0, 5.0]
    assert "2, 5" in err.value.message
    with pytest.raises(Conflict):  # a mapping alone is not a confirmation
        update_settings(
            db, t.lead, t.project, {"scale": ZERO_TO_FOUR}, grade_mapping={"2": 1, "5": 4}
        )
    assert read_settings(t.project.settings).scale_values == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [({"2": 1}, "grade 5"), ({"2": 1, "5": 7}, "7, which is not on the new scale"), ("x", "map")],
)
def test_a_scale_migration_needs_a_full_mapping_onto_the_new_scale(
    db, severity_team, mapping, fragment
):
    t = severity_team
    give_label(db, t.project, t.rater, grade=2.0)
    give_label(db, t.project, t.rater, grade=5.0)
    with pytest.raises(ValidationError) as err:
        update_settings(
            db,
            t.lead,
            t.project,
            {"scale": ZERO_TO_FOUR},
            confirm_migration=True,
            grade_mapping=mapping,
        )
    assert fragment in err.value.message and err.value.status == 422


def test_a_confirmed_scale_migration_maps_every_label_with_a_revision(db, severity_team):
    t = severity_team
    moved = [give_label(db, t.project, t.rater, grade=g) for g in (1.0, 3.0, 5.0)]
    other = give_label(db, t.project, t.lead, grade=3.0)
    result = update_settings(
        db,
        t.lead,
        t.project,
        {"scale": ZERO_TO_FOUR},
        confirm_migration=True,
        grade_mapping={"1": 0, "3": 2, "5": 4},
    )
    assert result == {"changed": ["scale"], "labels_migrated": 4}
    for label, expected in zip([*moved, other], [0.0, 2.0, 4.0, 2.0], strict=True):
        db.refresh(label)
        assert label.grade == expected and label.version == 2
        revs = db.scalars(
            select(LabelRevision)
            .where(LabelRevision.label_id == label.id)
            .order_by(LabelRevision.version)
        ).all()
        assert [r.grade for r in revs][-1] == expected and len(revs) == 2
        assert revs[-1].author_id == t.lead.id and revs[0].author_id == label.rater_id
    (event,) = events(db, "project.settings")
    assert event.details["labels_migrated"] == 4
    assert event.details["grade_mapping"] == {"1": 0.0, "3": 2.0, "5": 4.0}


def test_a_renaming_with_the_identity_mapping_changes_no_label(db, severity_team):
    t = severity_team
    label = give_label(db, t.project, t.rater, grade=3.0)
    renamed = [dict(s, name=s["name"] + " acne") for s in DEFAULT_SEVERITY_SCALE]
    result = update_settings(
        db,
        t.lead,
        t.project,
        {"scale": renamed},
        confirm_migration=True,
        grade_mapping=[[v, v] for v in (1, 2, 3, 4, 5)],
    )
    assert result == {"changed": ["scale"], "labels_migrated": 0}
    db.refresh(label)
    assert label.version == 1 and label.grade == 3.0


def test_non_graded_answers_need_confirmation_once_labels_exist(db, severity_team):
    t = severity_team
    give_label(db, t.project, t.rater, grade=2.0)
    with pytest.raises(Conflict) as err:
        update_settings(db, t.lead, t.project, {"allow_non_graded": True})
    assert err.value.code == "confirm_migration"
    update_settings(db, t.lead, t.project, {"allow_non_graded": True}, confirm_migration=True)
    assert t.project.settings["allow_non_graded"] is True


def test_non_graded_answers_cannot_be_turned_off_while_labels_use_them(db, severity_team):
    t = severity_team
    update_settings(db, t.lead, t.project, {"allow_non_graded": True})
    give_label(db, t.project, t.rater, decision="not_acne")
    with pytest.raises(Conflict) as err:
        update_settings(db, t.lead, t.project, {"allow_non_graded": False}, confirm_migration=True)
    assert err.value.code == "non_graded_labels" and "1 current labels" in err.value.message
    assert t.project.settings["allow_non_graded"] is True


def test_fusion_and_agreement_settings_change_freely_with_labels(db, severity_team):
    t = severity_team
    label = give_label(db, t.project, t.rater, grade=2.0)
    result = update_settings(
        db,
        t.lead,
        t.project,
        {
            "fusion": {"explanation_k": 2, "method": "dawid_skene"},
            "agreement": {"min_pair_images": 5, "min_group_images": 50},
        },
    )
    assert result["changed"] == [
        "agreement.min_group_images",
        "agreement.min_pair_images",
        "fusion.explanation_k",
        "fusion.method",
    ]
    s = read_settings(t.project.settings)
    assert (s.explanation_k, s.fusion_method, s.min_pair_images, s.min_group_images) == (
        2,
        "dawid_skene",
        5,
        50,
    )
    db.refresh(label)
    assert label.version == 1


def test_a_mapping_without_a_scale_change_is_refused(db, severity_team):
    t = severity_team
    with pytest.raises(ValidationError, match="scale is unchanged"):
        update_settings(
            db, t.lead, t.project, {"fusion": {"explanation_k": 2}}, grade_mapping={"1": 2}
        )


def test_prescreen_model_must_be_a_trained_model_of_the_project(db, app, make_user, make_project):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="quality")
    with pytest.raises(ValidationError, match="not a trained quality model"):
        update_settings(
            db, lead, project, {"prescreen_model_id": "quality-x"}, models_config=app.config
        )
    assert read_settings(project.settings).prescreen_model_id is None


# -- the API --------------------------------------------------------------------------------------


def test_patch_changes_settings_and_answers_422_and_409(db, client, severity_team):
    t = severity_team
    headers = bearer(db, t.lead)
    url = f"/api/v1/projects/{t.project.id}"
    ok = client.patch(url, json={"settings": {"scale": ZERO_TO_FOUR}}, headers=headers)
    assert ok.status_code == 200, ok.json
    assert (
        ok.json["changed"] == ["scale"] and ok.json["project"]["settings"]["scale"][0]["value"] == 0
    )
    assert client.get(url, headers=headers).json["settings"]["scale"] == ZERO_TO_FOUR
    bad = client.patch(url, json={"settings": {"fusion": {"explanation_k": 0}}}, headers=headers)
    assert bad.status_code == 422 and "explanation threshold" in bad.json["error"]["message"]
    assert client.patch(url, json={"scale": []}, headers=headers).status_code == 422
    assert (
        client.patch(
            url, json={"settings": {}, "confirm_migration": "yes"}, headers=headers
        ).status_code
        == 422
    )
    assert client.patch(url, data="x", headers=headers).status_code == 400
    give_label(db, t.project, t.rater, grade=0.0)
    refused = client.patch(
        url, json={"settings": {"scale": DEFAULT_SEVERITY_SCALE}}, headers=headers
    )
    assert refused.status_code == 409 and refused.json["error"]["grades_in_use"] == [0.0]
    done = client.patch(
        url,
        json={
            "settings": {"scale": DEFAULT_SEVERITY_SCALE},
            "confirm_migration": True,
            "grade_mapping": {"0": 1},
        },
        headers=headers,
    )
    assert done.status_code == 200 and done.json["labels_migrated"] == 1
    assert db.scalar(select(Label.grade).where(Label.project_id == t.project.id)) == 1.0


def test_patch_is_for_the_projects_leads_only(db, client, severity_team, make_user):
    t = severity_team
    url = f"/api/v1/projects/{t.project.id}"
    body = {"settings": {"fusion": {"explanation_k": 2}}}
    other_lead = make_user(None, "lead")
    assert client.patch(url, json=body, headers=bearer(db, other_lead)).status_code == 403
    assert client.patch(url, json=body, headers=bearer(db, t.rater)).status_code == 403
    admin = make_user(None, "admin")
    assert client.patch(url, json=body, headers=bearer(db, admin)).status_code == 200


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_settings_print_change_and_migrate(runner, db, severity_team):
    import json

    t = severity_team
    ref = str(t.project.id)
    shown = runner.invoke(args=["projects", "settings", ref])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["scale"][0]["value"] == 1
    res = runner.invoke(
        args=["projects", "settings", ref, "--set", '{"fusion": {"explanation_k": 3}}']
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["fusion"]["explanation_k"] == 3
    give_label(db, t.project, t.rater, grade=5.0)
    db.flush()
    scale = json.dumps({"scale": ZERO_TO_FOUR})
    refused = runner.invoke(args=["projects", "settings", ref, "--set", scale])
    assert refused.exit_code != 0 and "labels already carry the grades 5" in refused.output
    no_actor = runner.invoke(
        args=["projects", "settings", ref, "--set", scale, "--confirm-migration", "--map", "5=4"]
    )
    assert no_actor.exit_code != 0 and "needs a person" in no_actor.output
    done = runner.invoke(
        args=[
            *("projects", "settings", ref, "--set", scale, "--confirm-migration"),
            *("--map", "5=4", "--as", t.lead.email),
        ]
    )
    assert done.exit_code == 0, done.output
    assert "labels mapped: 1" in done.stderr
    db.expire_all()
    assert db.scalar(select(Label.grade).where(Label.project_id == t.project.id)) == 4.0
    bad = runner.invoke(args=["projects", "settings", ref, "--set", "{nope"])
    assert bad.exit_code != 0 and "not JSON" in bad.output


def test_fusion_settings_apply_to_the_next_export_without_recomputing(db, make_user, make_project):
    """Nothing fused is stored: the next read of the fused set follows the new settings."""
    from projects_fixtures import image_row

    from labeler.reports.export import fused_records

    lead = make_user(None, "lead")
    a, b = make_user(None, "rater"), make_user(None, "rater")
    project = make_project(lead, protocol="quality")
    one, two = image_row(project.id), image_row(project.id)
    db.add_all([one, two])
    db.flush()
    give_label(db, project, a, decision="poor_quality", image=one, explanations=["blurry"])
    give_label(
        db, project, b, decision="poor_quality", image=one, explanations=["blurry", "bad_light"]
    )
    give_label(db, project, a, decision="lesion", image=two)
    give_label(db, project, b, decision="no_skin", image=two)

    def fused():
        return {r["image_id"]: r for r in fused_records(db, project)}

    before = fused()
    assert before[one.id]["relevant_explanations"] == ["blurry", "bad_light"]
    assert before[two.id]["tie"] and before[two.id]["fused_class"] is None
    order = ["no_skin", "lesion", "healthy_skin", "poor_quality"]
    update_settings(
        db,
        lead,
        project,
        {"fusion": {"explanation_k": 2, "tie_policy": "precedence", "precedence": order}},
    )
    after = fused()
    assert after[one.id]["relevant_explanations"] == ["blurry"]
    assert after[two.id]["fused_class"] == "no_skin"


def test_settings_page_keeps_a_prescreen_model_whose_files_are_gone(
    db, client, make_user, make_project, login_as
):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="quality")
    gone = "quality-20260101T000000-abcdef"
    project.settings = {**project.settings, "prescreen_model_id": gone}
    db.flush()
    login_as(lead)
    page = client.get(f"/projects/{project.id}/settings").get_data(as_text=True)
    assert f'value="{gone}" selected' in page and "files are missing" in page
    form = {
        "csrf_token": client.csrf,
        "method": "plurality",
        "explanation_k": "2",
        "tie_policy": "unresolved",
        "min_pair_images": "1",
        "min_group_images": "30",
        "prescreen_model_id": gone,
    }
    saved = client.post(f"/projects/{project.id}/settings", data=form)
    assert saved.status_code == 302
    db.expire_all()
    s = read_settings(project.settings)
    assert s.explanation_k == 2 and s.prescreen_model_id == gone
    bad = client.post(f"/projects/{project.id}/settings", data={**form, "min_group_images": "lots"})
    assert bad.status_code == 422 and "fairness group" in bad.get_data(as_text=True)


def test_settings_page_sets_a_precedence_order_and_explains_a_bad_one(
    db, client, make_user, make_project, login_as
):
    lead = make_user(None, "lead")
    project = make_project(lead, protocol="quality")
    db.flush()
    login_as(lead)
    form = {
        "csrf_token": client.csrf,
        "method": "dawid_skene",
        "explanation_k": "1",
        "tie_policy": "precedence",
        "min_pair_images": "3",
        "min_group_images": "30",
        "prescreen_model_id": "",
    }
    url = f"/projects/{project.id}/settings"
    twice = [("precedence", c) for c in ("lesion", "lesion", "no_skin", "poor_quality")]
    bad = client.post(url, data=MultiDict([*form.items(), *twice]))
    assert bad.status_code == 422 and "each of the four classes once" in bad.get_data(as_text=True)
    db.expire_all()
    assert read_settings(project.settings).tie_policy == "unresolved"
    order = ["poor_quality", "lesion", "no_skin", "healthy_skin"]
    ok = client.post(url, data=MultiDict([*form.items(), *(("precedence", c) for c in order)]))
    assert ok.status_code == 302
    db.expire_all()
    s = read_settings(project.settings)
    assert (s.tie_policy, list(s.precedence), s.fusion_method, s.min_pair_images) == (
        "precedence",
        order,
        "dawid_skene",
        3,
    )
    page = client.get(url).get_data(as_text=True)
    first = page[page.index('id="precedence-1"') : page.index('id="precedence-2"')]
    assert '<option value="poor_quality" selected>' in first
    assert 'value="dawid_skene" checked' in page
