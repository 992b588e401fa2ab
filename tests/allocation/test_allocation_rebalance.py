"""Rebalancing after the first allocation: what may move (docs/domain.md section 2), the first-shown stamp
that decides it, the admin's preview, and a removed rater's access."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from labeler.allocation import services
from labeler.allocation.models import ItemStatus, QueueItem
from labeler.labeling.models import Label


def post_json(client, url, body):
    return client.post(url, json=body, headers={"X-CSRFToken": client.csrf})


def queue(db, rater):
    db.expire_all()
    return list(
        db.scalars(
            select(QueueItem).where(QueueItem.rater_id == rater.id).order_by(QueueItem.position)
        )
    )


def put_label(client, public_id, body=None):
    payload = {
        "decision": "healthy_skin",
        "base_version": 0,
        "submission_id": uuid.uuid4().hex,
        **(body or {}),
    }
    return client.put(
        f"/api/v1/items/{public_id}/label", json=payload, headers={"X-CSRFToken": client.csrf}
    )


@pytest.fixture()
def allocated(db, team, make_images):
    make_images(team.project, 40, store=True)
    raters = team.raters(2)
    services.allocate(db, team.lead, team.project, raters, golden_size=4, overlap=1, seed=5)
    db.commit()
    return team, raters


def test_every_way_of_serving_an_item_stamps_it_once(db, allocated, client_for):
    team, raters = allocated
    c = client_for(raters[0])
    assert all(it.shown_at is None for it in queue(db, raters[0]))
    nxt = c.get(f"/api/v1/projects/{team.project.id}/queue/next").get_json()["item"]
    stamped = {it.public_id: it.shown_at for it in queue(db, raters[0]) if it.shown_at}
    assert list(stamped) == [nxt["id"]]
    # served again: no second write
    c.get(f"/api/v1/projects/{team.project.id}/queue/next")
    c.get(f"/api/v1/items/{nxt['id']}")
    assert {it.public_id: it.shown_at for it in queue(db, raters[0]) if it.shown_at} == stamped
    # the item JSON, its label JSON (the page loads and prefetches with it), its image and the page
    ids = [it.public_id for it in queue(db, raters[0])][1:5]
    assert c.get(f"/api/v1/items/{ids[0]}").status_code == 200
    assert c.get(f"/api/v1/items/{ids[1]}/label").status_code == 200
    with c.get(f"/api/v1/items/{ids[2]}/image") as image:  # closed: its streamed file too
        assert image.status_code == 200
    assert c.get(f"/items/{ids[3]}").status_code == 200
    shown = {it.public_id for it in queue(db, raters[0]) if it.shown_at}
    assert shown == {nxt["id"], *ids[:4]}
    # another rater's request stamps nothing of theirs (404), and nothing of the first rater's
    other = client_for(raters[1])
    assert other.get(f"/api/v1/items/{ids[0]}").status_code == 404
    assert not any(it.shown_at for it in queue(db, raters[1]))


def test_adding_a_rater_moves_only_items_never_shown(db, team, make_images, client_for):
    make_images(team.project, 60)
    raters = team.raters(2)
    services.allocate(db, team.lead, team.project, raters, golden_size=0, overlap=1, seed=11)
    db.commit()
    # the first rater looks through their whole queue (label nothing): none of it may move
    c = client_for(raters[0])
    for it in queue(db, raters[0]):
        assert c.get(f"/api/v1/items/{it.public_id}").status_code == 200
    seen_before = [(it.image_id, it.public_id) for it in queue(db, raters[0])]
    # the second rater was shown their first 5 items only
    for it in queue(db, raters[1])[:5]:
        db.get(QueueItem, it.id).shown_at = it.created_at
    db.commit()
    shown_second = {it.image_id for it in queue(db, raters[1])[:5]}
    newcomer = team.raters(1)[0]
    db.commit()
    preview = services.preview_rater_change(db, team.project, newcomer)
    assert not queue(db, newcomer)  # the preview wrote nothing
    result = services.add_rater(db, team.admin, team.project, newcomer)
    db.commit()
    assert preview["moves"] == sum(result["moved"].values()) > 0
    assert preview["moved_from"] == {raters[1].email: preview["moves"]}
    assert "never been shown" in preview["rule"]
    # the first rater kept everything they saw, in the same order; the second kept what they saw
    assert [(it.image_id, it.public_id) for it in queue(db, raters[0])] == seen_before
    assert shown_second <= {it.image_id for it in queue(db, raters[1])}
    moved = {it.image_id for it in queue(db, newcomer)}
    assert not moved & shown_second and len(moved) == preview["moves"]


def test_moved_items_land_among_the_receivers_unseen_items(db, team, make_images):
    make_images(team.project, 90)
    raters = team.raters(3)
    services.allocate(db, team.lead, team.project, raters, golden_size=0, overlap=1, seed=3)
    leaving, receivers = raters[0], raters[1:]
    for r in receivers:  # each receiver has seen (and labeled some of) the first 10 of their 30
        for it in queue(db, r)[:10]:
            it.shown_at = it.created_at
            if it.position <= 4:
                db.add(
                    Label(
                        project_id=it.project_id,
                        rater_id=r.id,
                        image_id=it.image_id,
                        decision="no_skin",
                    )
                )
                it.status = ItemStatus.done
        db.flush()  # before the next queue() expires what is not written
    before = {r.id: [it.image_id for it in queue(db, r)] for r in receivers}
    for it in queue(db, leaving)[:3]:  # shown to the leaver but unlabeled: moves all the same
        it.shown_at = it.created_at
    db.flush()
    leaving_images = {it.image_id for it in queue(db, leaving)}
    result = services.remove_rater(db, team.lead, team.project, leaving)
    assert sum(result["moved"].values()) == 30 and result["kept_labeled"] == 0
    for r in receivers:
        after = [it.image_id for it in queue(db, r)]
        assert after[:10] == before[r.id][:10]  # seen items keep their places at the front
        gained = [i for i in after if i not in before[r.id]]
        assert set(gained) <= leaving_images
        # the old unseen items keep their relative order, the new ones are spread among them
        assert [i for i in after[10:] if i in before[r.id]] == before[r.id][10:]
        assert min(after.index(i) for i in gained) >= 10
        # spread, not appended: at least one new item stands before an old unseen one
        assert min(after.index(i) for i in gained) < max(after.index(i) for i in before[r.id])
    assert sorted(i for r in receivers for i in queue_images(db, r)) == sorted(
        set().union(*before.values()) | leaving_images
    )


def queue_images(db, rater):
    return [it.image_id for it in queue(db, rater)]


def test_preview_through_the_api_and_the_page(db, allocated, client_for):
    team, raters = allocated
    newcomer = team.raters(1)[0]
    db.commit()
    c = client_for(team.lead)
    url = f"/api/v1/projects/{team.project.id}/allocation/raters/preview"
    add = post_json(c, url, {"email": newcomer.email})
    assert add.status_code == 200, add.get_json()
    body = add.get_json()
    assert body["action"] == "add" and body["moves"] == 12  # 36 fold items: 18 + 18 -> 12 each
    assert "never been shown" in body["rule"]
    remove = post_json(c, url, {"email": raters[0].email, "remove": True})
    assert remove.status_code == 200 and remove.get_json()["moves"] == 18
    assert remove.get_json()["moved_to"] == {raters[1].email: 18}
    assert post_json(c, url, {"email": raters[0].email, "remove": "yes"}).status_code == 422
    assert post_json(c, url, {"email": "nobody@example.org"}).status_code == 422
    assert post_json(client_for(raters[0]), url, {"email": newcomer.email}).status_code == 403
    # nothing was written
    assert not queue(db, newcomer) and len(queue(db, raters[0])) == 22
    page = c.post(
        f"/projects/{team.project.id}/allocation/raters/preview",
        data={"csrf_token": c.csrf, "email": newcomer.email, "action": "add"},
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="rater-preview"' in html
    assert "<strong>12</strong> fold items move" in html and "never been shown" in html
    page = c.post(
        f"/projects/{team.project.id}/allocation/raters/preview",
        data={"csrf_token": c.csrf, "email": raters[1].email, "action": "remove"},
    )
    html = page.get_data(as_text=True)
    assert "<strong>18</strong> unlabeled fold items move" in html and "lose access" in html
    assert not queue(db, newcomer)


def test_a_removed_rater_keeps_no_access_and_their_labels_stay(db, allocated, client_for):
    team, raters = allocated
    leaver, stayer = raters
    c = client_for(leaver)
    mine = queue(db, leaver)
    assert put_label(c, mine[0].public_id).status_code == 200
    label_before = db.scalar(select(Label).where(Label.rater_id == leaver.id))
    before = (label_before.id, label_before.decision, label_before.version)
    labeled = mine[0].public_id
    assert labeled in c.get("/my-labels").get_data(as_text=True)  # listed before the removal
    services.remove_rater(db, team.lead, team.project, leaver)
    db.commit()
    # a plain 404 like any item that is not theirs: read, change, skip, image, page, queue
    assert c.get(f"/api/v1/items/{labeled}/label").status_code == 404
    assert put_label(c, labeled, {"decision": "no_skin", "base_version": 1}).status_code == 404
    assert c.get(f"/api/v1/items/{labeled}").status_code == 404
    assert c.get(f"/api/v1/items/{labeled}/image").status_code == 404
    assert c.get(f"/items/{labeled}").status_code == 404
    assert (
        c.post(
            f"/api/v1/items/{labeled}/skip", json={}, headers={"X-CSRFToken": c.csrf}
        ).status_code
        == 404
    )
    assert c.get(f"/api/v1/projects/{team.project.id}/queue/next").status_code == 404
    assert labeled not in c.get("/my-labels").get_data(as_text=True)
    db.expire_all()
    after = db.scalar(select(Label).where(Label.rater_id == leaver.id))
    assert (after.id, after.decision, after.version) == before
    # the lead still finds the label, as it was, in the raw export
    export = client_for(team.lead).get(
        f"/api/v1/projects/{team.project.id}/export?kind=raw&format=jsonl"
    )
    assert export.status_code == 200
    rows = [json.loads(line) for line in export.get_data(as_text=True).splitlines()]
    theirs = [r for r in rows if r["rater_email"] == leaver.email]
    assert len(theirs) == 1 and theirs[0]["decision"] == "healthy_skin"
    # the stayer took over all the rest: 36 fold images but the one the leaver labeled, 4 golden
    assert len(queue(db, stayer)) == 36 - 1 + 4
