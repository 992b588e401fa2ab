"""Project members: the services, the API (GET/POST/DELETE), the pages' authorization and the CLI."""

from __future__ import annotations

import pytest
from projects_fixtures import bearer, give_label, image_row
from sqlalchemy import func, select

from labeler.allocation import services as allocation
from labeler.allocation.models import ItemStatus, QueueItem
from labeler.audit.models import AuditEvent
from labeler.auth.models import Role, User
from labeler.auth.services import set_active
from labeler.errors import Conflict, NotFound, ValidationError
from labeler.labeling.models import Label
from labeler.projects.members import add_project_member, list_members, remove_project_member
from labeler.projects.models import MemberRole


def actions(db, action):
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def items(db, project, rater):
    return db.scalars(
        select(QueueItem).where(QueueItem.project_id == project.id, QueueItem.rater_id == rater.id)
    ).all()


@pytest.fixture()
def admin_project(db, make_user, make_project):
    """A project an admin created: no lead yet."""
    admin = make_user(None, "admin")
    return admin, make_project(admin, protocol="quality")


# -- services -------------------------------------------------------------------------------------


def test_an_admin_project_opens_to_a_lead_once_added(db, client, admin_project, make_user):
    admin, project = admin_project
    lead = make_user(None, "lead")
    headers = bearer(db, lead)
    assert client.get(f"/api/v1/projects/{project.id}", headers=headers).status_code == 403
    add_project_member(db, admin, project, lead.email, "lead")
    assert client.get(f"/api/v1/projects/{project.id}", headers=headers).status_code == 200
    (event,) = actions(db, "project.member_add")
    assert event.actor_id == admin.id and event.project_id == project.id
    assert (event.details["user_id"], event.details["role"]) == (lead.id, "lead")


def test_an_unknown_address_is_invited_with_the_role(db, admin_project):
    admin, project = admin_project
    result = add_project_member(
        db, admin, project, "  New.Derm@Clinic.ORG ", "rater", name="Dr New"
    )
    assert result["invited"] is True and result["email"] == "new.derm@clinic.org"
    user = db.scalar(select(User).where(User.email == "new.derm@clinic.org"))
    assert user.roles == {Role.rater} and user.name == "Dr New" and user.oid is None
    assert user.id in project.member_ids(MemberRole.rater)
    invited = [e for e in actions(db, "user.add") if e.object_id == str(user.id)]
    assert len(invited) == 1 and invited[0].actor_id == admin.id


def test_a_known_account_gets_the_role_it_needs(db, admin_project, make_user):
    admin, project = admin_project
    rater = make_user(None, "rater")
    result = add_project_member(db, admin, project, rater.email, "lead")
    assert result["invited"] is False and result["granted_role"] is True
    assert rater.roles == {Role.rater, Role.lead}
    assert rater.id in project.member_ids(MemberRole.lead)
    again = add_project_member(
        db, admin, project, rater.email, "rater"
    )  # both roles in one project
    assert again["granted_role"] is False
    (member,) = list_members(db, project)
    assert member.roles == [MemberRole.lead, MemberRole.rater]


@pytest.mark.parametrize(
    ("email", "role", "error", "fragment"),
    [
        ("not-an-address", "rater", ValidationError, "not a valid e-mail"),
        ("a@b.org", "owner", ValidationError, "'lead' or 'rater'"),
        ("a@b.org", None, ValidationError, "'lead' or 'rater'"),
    ],
)
def test_bad_additions_say_what_is_wrong(db, admin_project, email, role, error, fragment):
    admin, project = admin_project
    with pytest.raises(error) as err:
        add_project_member(db, admin, project, email, role)
    assert fragment in err.value.message and err.value.status == 422


def test_duplicates_and_deactivated_accounts_are_refused(db, admin_project, make_user):
    admin, project = admin_project
    rater = make_user(None, "rater")
    add_project_member(db, admin, project, rater.email, "rater")
    with pytest.raises(Conflict, match="already a rater"):
        add_project_member(db, admin, project, rater.email.upper(), "rater")
    gone = make_user(None, "rater")
    set_active(db, admin, gone, False)
    with pytest.raises(ValidationError, match="deactivated"):
        add_project_member(db, admin, project, gone.email, "rater")
    assert gone.id not in project.member_ids(MemberRole.rater)


def test_removing_a_rater_needs_confirmation_and_goes_through_allocation(db, make_user):
    from labeler.projects.services import create_project

    lead = make_user(None, "lead")
    project = create_project(db, lead, "Members allocation", "quality")
    images = [image_row(project.id) for _ in range(12)]
    db.add_all(images)
    db.flush()
    raters = [make_user(None, "rater") for _ in range(3)]
    allocation.allocate(db, lead, project, raters, golden_size=2, overlap=1, seed=5)
    leaving = raters[0]
    mine = items(db, project, leaving)
    golden = [item for item in mine if item.is_golden]
    assert golden  # their unlabeled golden items stay: every rater holds those images
    for item in [item for item in mine if not item.is_golden][:2]:
        give_label(db, project, leaving, image=db.get(type(images[0]), item.image_id))
        item.status = ItemStatus.done
    db.flush()
    with pytest.raises(ValidationError) as err:
        remove_project_member(db, lead, project, leaving.email, "rater")
    assert err.value.code == "confirm_needed"
    assert err.value.extra["labels_kept"] == 2
    assert err.value.extra["items_moving"] == len(mine) - 2 - len(golden)
    assert leaving.id in project.member_ids(MemberRole.rater)  # nothing happened
    labels_before = db.scalar(select(func.count(Label.id)))
    result = remove_project_member(db, lead, project, leaving.email, "rater", confirm=True)
    assert result["queue"]["kept_labeled"] == 2
    assert sum(result["queue"]["moved"].values()) == err.value.extra["items_moving"]
    assert leaving.id not in project.member_ids(MemberRole.rater)
    assert {i.status for i in items(db, project, leaving)} == {ItemStatus.done}
    assert db.scalar(select(func.count(Label.id))) == labels_before
    assert len(actions(db, "allocation.rater_remove")) == 1
    assert len(actions(db, "project.member_remove")) == 1


def test_a_rater_added_after_allocation_gets_a_queue(db, make_user):
    from labeler.projects.services import create_project

    lead = make_user(None, "lead")
    project = create_project(db, lead, "Late rater", "quality")
    db.add_all([image_row(project.id) for _ in range(10)])
    db.flush()
    allocation.allocate(db, lead, project, [make_user(None, "rater")], golden_size=2, seed=1)
    result = add_project_member(db, lead, project, "late@clinic.org", "rater")
    late = db.scalar(select(User).where(User.email == "late@clinic.org"))
    assert result["invited"] and result["queue"]["golden"] == 2
    assert len(items(db, project, late)) == 2 + result["queue"]["fold"]
    assert len(actions(db, "allocation.rater_add")) == 1


def test_the_only_lead_cannot_remove_themselves_but_an_admin_can(db, make_user, make_project):
    lead = make_user(None, "lead")
    admin = make_user(None, "admin")
    project = make_project(lead)
    with pytest.raises(Conflict, match="only lead"):
        remove_project_member(db, lead, project, lead.email, "lead")
    remove_project_member(db, admin, project, lead.email, "lead")
    assert project.member_ids(MemberRole.lead) == set()
    with pytest.raises(NotFound):
        remove_project_member(db, admin, project, lead.email, "lead")


def test_removing_a_rater_without_a_queue_only_ends_the_membership(db, admin_project, make_user):
    admin, project = admin_project
    rater = make_user(None, "rater")
    add_project_member(db, admin, project, rater.email, "rater")
    result = remove_project_member(db, admin, project, rater.email, "rater", confirm=True)
    assert result["queue"] is None and rater.id not in project.member_ids(MemberRole.rater)


# -- API ------------------------------------------------------------------------------------------


def test_members_api_add_list_remove(db, client, make_user, make_project):
    lead = make_user(None, "lead")
    project = make_project(lead)
    headers = bearer(db, lead)
    url = f"/api/v1/projects/{project.id}/members"
    added = client.post(url, json={"email": "co@clinic.org", "role": "lead"}, headers=headers)
    assert added.status_code == 201 and added.json["invited"] is True
    client.post(url, json={"email": "r@clinic.org", "role": "rater"}, headers=headers)
    listing = client.get(url, headers=headers).json["members"]
    assert {(m["email"], tuple(m["roles"])) for m in listing} == {
        (lead.email, ("lead",)),
        ("co@clinic.org", ("lead",)),
        ("r@clinic.org", ("rater",)),
    }
    assert all(m["signed_in_before"] is False for m in listing)
    unconfirmed = client.delete(
        url, json={"email": "r@clinic.org", "role": "rater"}, headers=headers
    )
    assert unconfirmed.status_code == 422 and unconfirmed.json["error"]["code"] == "confirm_needed"
    bad_flag = client.delete(
        url, json={"email": "r@clinic.org", "role": "rater", "confirm": "yes"}, headers=headers
    )
    assert bad_flag.status_code == 422
    gone = client.delete(
        url, json={"email": "r@clinic.org", "role": "rater", "confirm": True}, headers=headers
    )
    assert gone.status_code == 200
    assert (
        client.delete(
            url, json={"email": "r@clinic.org", "role": "rater", "confirm": True}, headers=headers
        ).status_code
        == 404
    )
    assert (
        client.post(url, json={"email": "x@y.org", "role": "boss"}, headers=headers).status_code
        == 422
    )
    assert client.post(url, data="nope", headers=headers).status_code == 400
    client.post(url, json={"email": "q@clinic.org", "role": "rater"}, headers=headers)
    by_query = f"{url}?email=q@clinic.org&role=rater"
    assert client.delete(by_query, headers=headers).json["error"]["code"] == "confirm_needed"
    assert client.delete(by_query + "&confirm=maybe", headers=headers).status_code == 422
    assert client.delete(by_query + "&confirm=true", headers=headers).status_code == 200
    assert "q@clinic.org" not in {
        m["email"] for m in client.get(url, headers=headers).json["members"]
    }


def test_members_are_managed_by_the_projects_leads_and_admins_only(
    db, client, make_user, make_project
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    rater = make_user(None, "rater")
    add_project_member(db, lead, project, rater.email, "rater")
    outsider = make_user(None, "lead")
    url = f"/api/v1/projects/{project.id}/members"
    body = {"email": "z@clinic.org", "role": "lead"}
    for user in (rater, outsider):
        headers = bearer(db, user)
        assert client.get(url, headers=headers).status_code == 403
        assert client.post(url, json=body, headers=headers).status_code == 403
    admin = make_user(None, "admin")
    assert client.post(url, json=body, headers=bearer(db, admin)).status_code == 201


def test_member_pages_check_role_membership_and_csrf(db, client, make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead)
    rater = make_user(None, "rater")
    add_project_member(db, lead, project, rater.email, "rater")
    db.flush()
    login_as(rater)
    assert client.get(f"/projects/{project.id}/members").status_code == 403
    assert client.get(f"/projects/{project.id}/settings").status_code == 403
    login_as(lead)
    page = client.get(f"/projects/{project.id}/members")
    assert page.status_code == 200 and rater.email in page.get_data(as_text=True)
    no_csrf = client.post(
        f"/projects/{project.id}/members", data={"email": "a@b.org", "role": "rater"}
    )
    assert no_csrf.status_code == 400
    ask = client.post(
        f"/projects/{project.id}/members/remove",
        data={"email": rater.email, "role": "rater", "csrf_token": client.csrf},
    )
    assert ask.status_code == 200 and "Remove rater" in ask.get_data(as_text=True)
    assert rater.id in project.member_ids(MemberRole.rater)
    bad = client.post(
        f"/projects/{project.id}/members",
        data={"email": "nope", "role": "rater", "csrf_token": client.csrf},
    )
    assert bad.status_code == 422 and "not a valid e-mail" in bad.get_data(as_text=True)
    co_lead = make_user(None, "lead")
    add_project_member(db, lead, project, co_lead.email, "lead")
    db.flush()
    stepped_down = client.post(
        f"/projects/{project.id}/members/remove",
        data={"email": lead.email, "role": "lead", "csrf_token": client.csrf},
    )
    assert stepped_down.status_code == 302 and stepped_down.headers["Location"] == "/"
    db.expire_all()
    assert project.member_ids(MemberRole.lead) == {co_lead.id}
    assert client.get(f"/projects/{project.id}/members").status_code == 403


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_members_add_list_remove(runner, db, make_user, make_project):
    lead = make_user(None, "lead")
    project = make_project(lead, name="CLI members")
    db.flush()
    res = runner.invoke(
        args=["projects", "members", "CLI members", "--add", "co@clinic.org", "--role", "lead"]
    )
    assert res.exit_code == 0, res.output
    assert "added co@clinic.org as lead (invited)" in res.output
    res = runner.invoke(args=["projects", "members", str(project.id), "--add", "r@clinic.org"])
    assert res.exit_code == 0, res.output
    listing = runner.invoke(args=["projects", "members", str(project.id)]).output
    assert "co@clinic.org\tlead" in listing and "r@clinic.org\trater" in listing
    refused = runner.invoke(
        args=["projects", "members", str(project.id), "--remove", "r@clinic.org"]
    )
    assert refused.exit_code != 0 and "--yes" in refused.output
    res = runner.invoke(
        args=["projects", "members", str(project.id), "--remove", "r@clinic.org", "--yes"]
    )
    assert res.exit_code == 0, res.output
    assert "r@clinic.org" not in runner.invoke(args=["projects", "members", str(project.id)]).output
    bad = runner.invoke(
        args=["projects", "members", str(project.id), "--add", "x@y.org", "--role", "boss"]
    )
    assert bad.exit_code != 0


def test_a_concurrent_addition_of_the_same_person_is_a_conflict_not_a_crash(
    db, admin_project, make_user
):
    from sqlalchemy import insert

    from labeler.projects.models import ProjectMember

    admin, project = admin_project
    rater = make_user(None, "rater")
    assert project.member_ids(MemberRole.rater) == set()  # loaded: this request's view
    # another request adds the same person between this one's check and its insert
    db.execute(
        insert(ProjectMember).values(project_id=project.id, user_id=rater.id, role=MemberRole.rater)
    )
    with pytest.raises(Conflict) as err:
        add_project_member(db, admin, project, rater.email, "rater")
    assert err.value.code == "concurrent_change" and err.value.status == 409
    assert db.scalar(select(func.count(ProjectMember.id))) == 1  # the session is still usable
