"""Allocation API, page, rater home and CLI: who may do what, and what each answers."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from labeler.allocation import services
from labeler.allocation.models import Allocation, ItemStatus, QueueItem
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member


def post_json(client, url, body):
    return client.post(url, json=body, headers={"X-CSRFToken": client.csrf})


@pytest.fixture()
def world(db, team, make_images, make_user, make_project):
    make_images(team.project, 24, store=True)
    raters = team.raters(3)
    other_lead = make_user(None, "lead")
    make_project(other_lead)
    db.commit()
    return team, raters, other_lead


def allocation_url(project):
    return f"/api/v1/projects/{project.id}/allocation"


@pytest.mark.parametrize("who", ["lead", "admin"])
def test_lead_or_admin_allocates_and_reads_the_summary(db, world, client_for, who):
    team, raters, _ = world
    c = client_for(getattr(team, who))
    resp = post_json(
        c,
        allocation_url(team.project),
        {"raters": [r.email for r in raters], "golden_size": 3, "overlap": 2, "seed": 12},
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["allocated"] and body["golden"] == 3 and body["overlap"] == 2 and body["seed"] == 12
    assert body["fold_sizes"] == {"min": 14, "max": 14}  # 21 * 2 / 3
    assert {r["email"] for r in body["raters"]} == {r.email for r in raters}
    assert c.get(allocation_url(team.project)).get_json() == body
    again = post_json(c, allocation_url(team.project), {"raters": [raters[0].email], "seed": 1})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_allocated"
    assert (
        db.scalar(select(func.count(Allocation.id)).where(Allocation.project_id == team.project.id))
        == 1
    )


def test_golden_list_through_the_api(world, client_for, db):
    team, raters, _ = world
    from labeler.images.models import Image

    ids = list(
        db.scalars(select(Image.id).where(Image.project_id == team.project.id).order_by(Image.id))
    )[:4]
    c = client_for(team.lead)
    resp = post_json(
        c, allocation_url(team.project), {"raters": [raters[0].email], "golden_image_ids": ids}
    )
    assert resp.status_code == 201 and resp.get_json()["golden"] == 4


@pytest.mark.parametrize(
    "body, code",
    [
        ({"raters": "a@b.org"}, "invalid_raters"),
        ({"raters": [], "seed": 1}, "no_raters"),
        ({"raters": ["nobody@example.org"]}, "unknown_raters"),
        ({"raters": ["{r0}"], "overlap": "2"}, "invalid_overlap"),
        ({"raters": ["{r0}"], "overlap": 5}, "overlap"),
        ({"raters": ["{r0}"], "golden_size": 1, "golden_image_ids": [1]}, "golden_both"),
        ({"raters": ["{r0}"], "golden_image_ids": [10**9]}, "unknown_images"),
        ({"raters": ["{r0}"], "seed": -1}, "seed"),
    ],
)
def test_bad_allocation_requests_are_refused_clearly(world, client_for, db, body, code):
    team, raters, _ = world
    body = {
        k: (
            [x.replace("{r0}", raters[0].email) for x in v]
            if isinstance(v, list) and k == "raters"
            else v
        )
        for k, v in body.items()
    }
    c = client_for(team.lead)
    resp = post_json(c, allocation_url(team.project), body)
    assert resp.status_code in (400, 422) and resp.get_json()["error"]["code"] == code, (
        resp.get_json()
    )
    assert db.scalar(select(Allocation.id).where(Allocation.project_id == team.project.id)) is None


def test_raters_and_other_leads_get_403_signed_out_401(world, client_for, app):
    team, raters, other_lead = world
    for user in (raters[0], other_lead):
        c = client_for(user)
        assert c.get(allocation_url(team.project)).status_code == 403
        assert (
            post_json(c, allocation_url(team.project), {"raters": [raters[0].email]}).status_code
            == 403
        )
        assert (
            post_json(
                c, allocation_url(team.project) + "/raters", {"email": raters[0].email}
            ).status_code
            == 403
        )
        assert c.get(f"/projects/{team.project.id}/allocation").status_code == 403
        assert (
            c.post(
                f"/projects/{team.project.id}/allocation/preview",
                data={"csrf_token": c.csrf, "raters": raters[0].email},
            ).status_code
            == 403
        )
    anon = app.test_client()
    assert anon.get(allocation_url(team.project)).status_code == 401
    assert anon.get(f"/api/v1/projects/{team.project.id}/queue/next").status_code == 401


def test_json_write_needs_csrf(world, client_for):
    team, raters, _ = world
    c = client_for(team.lead)
    resp = c.post(allocation_url(team.project), json={"raters": [raters[0].email]})
    assert resp.status_code == 400


def test_rater_queue_next_item_and_404s(db, world, client_for):
    team, raters, _ = world
    services.allocate(db, team.lead, team.project, raters, golden_size=3, overlap=1, seed=4)
    db.commit()
    a, b = client_for(raters[0]), client_for(raters[1])
    nxt = a.get(f"/api/v1/projects/{team.project.id}/queue/next").get_json()["item"]
    assert set(nxt) == {"id", "image_url", "position", "total", "done"}
    assert nxt["position"] == 1 and nxt["total"] == 3 + 7 and nxt["done"] == 0
    assert nxt["image_url"] == f"/api/v1/items/{nxt['id']}/image"
    assert a.get(f"/api/v1/items/{nxt['id']}").get_json()["item"]["status"] == "pending"
    img = a.get(nxt["image_url"])
    assert img.status_code == 200 and img.data[:2] == b"\xff\xd8"
    # another rater: 404 for the item, its image, and a project they are not part of
    assert b.get(f"/api/v1/items/{nxt['id']}").status_code == 404
    assert b.get(nxt["image_url"]).status_code == 404
    assert b.get("/api/v1/items/doesnotexist/image").status_code == 404
    lead = client_for(team.lead)
    assert lead.get(nxt["image_url"]).status_code == 404  # not even the lead reads a rater's item
    outsider = team.raters(1)[0]
    db.commit()
    assert (
        client_for(outsider).get(f"/api/v1/projects/{team.project.id}/queue/next").status_code
        == 404
    )
    # skipping: the skipped item comes back only at the end
    first = db.scalar(select(QueueItem).where(QueueItem.public_id == nxt["id"]))
    first.status = ItemStatus.skipped
    db.commit()
    second = a.get(f"/api/v1/projects/{team.project.id}/queue/next").get_json()["item"]
    assert second["position"] == 2
    for it in db.scalars(
        select(QueueItem).where(QueueItem.rater_id == raters[0].id, QueueItem.position > 1)
    ):
        it.status = ItemStatus.done
    db.commit()
    assert (
        a.get(f"/api/v1/projects/{team.project.id}/queue/next").get_json()["item"]["id"]
        == nxt["id"]
    )
    first.status = ItemStatus.done
    db.commit()
    assert a.get(f"/api/v1/projects/{team.project.id}/queue/next").get_json() == {"item": None}


def test_add_and_remove_rater_through_the_api(db, world, client_for):
    team, raters, _ = world
    services.allocate(db, team.lead, team.project, raters[:2], golden_size=4, overlap=1, seed=4)
    db.commit()
    c = client_for(team.admin)
    resp = post_json(c, allocation_url(team.project) + "/raters", {"email": raters[2].email})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["change"]["fold"] in (6, 7) and len(body["summary"]["raters"]) == 3
    resp = post_json(c, allocation_url(team.project) + "/raters/remove", {"email": raters[0].email})
    assert resp.status_code == 200, resp.get_json()
    assert {r["email"] for r in resp.get_json()["summary"]["raters"]} == {
        raters[1].email,
        raters[2].email,
    }
    assert (
        post_json(
            c, allocation_url(team.project) + "/raters/remove", {"email": raters[0].email}
        ).status_code
        == 404
    )


def test_allocation_page_preview_then_commit_then_add_and_remove(db, world, client_for):
    team, raters, _ = world
    outsider = team.raters(1)[0]  # a rater account that is not a member of this project
    for r in raters:
        add_member(db, None, team.project, r, MemberRole.rater)
    db.commit()
    c = client_for(team.lead)
    page = c.get(f"/projects/{team.project.id}/allocation")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert all(r.email in html for r in raters) and 'name="csrf_token"' in html
    assert outsider.email not in html  # the page offers the project's raters only
    assert f"/projects/{team.project.id}/allocation" in c.get(
        f"/projects/{team.project.id}"
    ).get_data(as_text=True)
    form = {
        "csrf_token": c.csrf,
        "raters": [r.email for r in raters[:2]],
        "golden_mode": "size",
        "golden_size": "4",
        "overlap": "1",
        "seed": "",
    }
    preview = c.post(f"/projects/{team.project.id}/allocation/preview", data=form)
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert 'id="preview"' in html and "Fold sizes 10–10" in html and "items per rater 14–14" in html
    seed = int(re.search(r'name="seed" value="(\d+)"', html.split('id="commit-form"')[1]).group(1))
    assert db.scalar(select(Allocation.id).where(Allocation.project_id == team.project.id)) is None
    commit = dict(form, seed=str(seed))
    resp = c.post(f"/projects/{team.project.id}/allocation", data=commit)
    assert resp.status_code == 302
    alloc = db.scalar(select(Allocation).where(Allocation.project_id == team.project.id))
    assert alloc.seed == seed
    html = c.get(f"/projects/{team.project.id}/allocation").get_data(as_text=True)
    assert "Current allocation" in html and "Add a rater" in html
    resp = c.post(
        f"/projects/{team.project.id}/allocation/raters",
        data={"csrf_token": c.csrf, "email": raters[2].email},
    )
    assert resp.status_code == 302
    resp = c.post(
        f"/projects/{team.project.id}/allocation/raters/remove",
        data={"csrf_token": c.csrf, "email": raters[0].email},
    )
    assert resp.status_code == 302
    db.expire_all()
    summary = services.summary(db, team.project)
    assert {r["email"] for r in summary["raters"]} == {raters[1].email, raters[2].email}
    # errors come back on the page, nothing written
    bad = c.post(
        f"/projects/{team.project.id}/allocation/preview",
        data={"csrf_token": c.csrf, "raters": raters[0].email, "overlap": "x"},
    )
    assert bad.status_code == 422 and "whole number" in bad.get_data(as_text=True)


def test_rater_home_shows_progress_and_continue(db, world, client_for):
    team, raters, _ = world
    services.allocate(db, team.lead, team.project, raters, golden_size=3, overlap=1, seed=9)
    first = db.scalar(
        select(QueueItem).where(QueueItem.rater_id == raters[0].id, QueueItem.position == 1)
    )
    first.status = ItemStatus.done
    db.commit()
    html = client_for(raters[0]).get("/").get_data(as_text=True)
    assert "1 / 10 labeled" in html
    second = db.scalar(
        select(QueueItem).where(QueueItem.rater_id == raters[0].id, QueueItem.position == 2)
    )
    link = re.search(r'<a class="button primary continue" href="([^"]+)"', html).group(1)
    assert second.public_id in link
    assert str(second.image_id) not in link.replace(second.public_id, "")


def test_cli_allocate(db, world, runner, tmp_path):
    team, raters, _ = world
    result = runner.invoke(
        args=[
            "allocate",
            team.project.name,
            "--raters",
            ",".join(r.email for r in raters),
            "--golden-size",
            "3",
            "--overlap",
            "1",
            "--seed",
            "5",
            "--preview",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "preview: 24 images, 3 golden" in result.output
    assert db.scalar(select(Allocation.id).where(Allocation.project_id == team.project.id)) is None
    result = runner.invoke(
        args=[
            "allocate",
            str(team.project.id),
            "--raters",
            ",".join(r.email for r in raters),
            "--golden-size",
            "3",
            "--overlap",
            "1",
            "--seed",
            "5",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "allocated: 24 images, 3 golden, overlap 1, seed 5" in result.output
    assert all(f"{r.email}\tgolden=3\tfold=7\ttotal=10" in result.output for r in raters)
    again = runner.invoke(
        args=["allocate", str(team.project.id), "--raters", raters[0].email, "--seed", "5"]
    )
    assert again.exit_code != 0 and "already has an allocation" in again.output


def test_cli_golden_list_file(db, world, runner, tmp_path):
    team, raters, _ = world
    from labeler.images.models import Image

    images = list(
        db.scalars(select(Image).where(Image.project_id == team.project.id).order_by(Image.id))
    )
    listing = tmp_path / "golden.txt"
    listing.write_text(f"{images[0].id}\n{images[1].filename}\n{images[2].sha256}\n\n")
    result = runner.invoke(
        args=[
            "allocate",
            str(team.project.id),
            "--raters",
            raters[0].email,
            "--golden-list",
            str(listing),
            "--seed",
            "1",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "3 golden" in result.output
    db.expire_all()
    assert raters[0].id in team.project.member_ids(MemberRole.rater)


def test_added_member_without_queue_is_not_listed(db, world):
    team, raters, _ = world
    services.allocate(db, team.lead, team.project, raters[:2], golden_size=2, seed=3)
    add_member(db, None, team.project, raters[2], MemberRole.rater)  # a member, but no queue yet
    assert {r["email"] for r in services.summary(db, team.project)["raters"]} == {
        raters[0].email,
        raters[1].email,
    }
    services.add_rater(db, team.lead, team.project, raters[2])
    assert len(services.summary(db, team.project)["raters"]) == 3
