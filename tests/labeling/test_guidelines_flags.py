"""Guidelines and reference images (leads write, the project's raters read), raters' flags and answers."""

# ruff: noqa: F811  (fixtures imported from labeling_fixtures are used as arguments)
from __future__ import annotations

import io

import pytest
from labeling_fixtures import make_item, severity_project  # noqa: F401  (fixtures)
from PIL import Image as PILImage
from sqlalchemy import func, select

from labeler.audit.models import AuditEvent
from labeler.guidelines.models import ReferenceImage
from labeler.guidelines.services import render_markdown
from labeler.images.models import Image


def png(color=(200, 120, 90), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def study(db, make_user, make_project, severity_project, make_item):
    """A severity project with a lead, two raters (each with an item of the same image) and an outsider."""
    lead = make_user(None, "lead")
    project = severity_project
    from labeler.projects.models import MemberRole
    from labeler.projects.services import add_member

    add_member(db, None, project, lead, MemberRole.lead)
    rater, other = make_user(None, "rater"), make_user(None, "rater")
    item = make_item(rater, project)
    image = db.get(Image, item.image_id)
    other_item = make_item(other, project, image=image)
    outsider = make_user(None, "rater")
    make_item(outsider, make_project())
    db.flush()
    return {
        "lead": lead,
        "project": project,
        "rater": rater,
        "other": other,
        "item": item,
        "other_item": other_item,
        "outsider": outsider,
    }


def events(db, action):
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def write(client, method, url, **kw):
    return getattr(client, method)(url, headers={"X-CSRFToken": client.csrf}, **kw)


def test_markdown_is_rendered_without_raw_html_or_script_links():
    html = render_markdown(
        "# Grades\n**Mild**: few papules <script>alert(1)</script> <img src=x onerror=alert(1)>\n"
        "[bad](javascript:alert(1)) [iga](https://example.org/iga)"
    )
    assert "<h1>Grades</h1>" in html and "<strong>Mild</strong>" in html
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html and 'href="https://example.org/iga"' in html


def test_lead_writes_guidelines_the_projects_raters_read_them(db, study, login_as):
    project = study["project"]
    url = f"/api/v1/projects/{project.id}/guidelines"
    client = login_as(study["lead"])
    resp = write(
        client,
        "put",
        url,
        json={
            "body": "# Acne grading\nUse the **IGA** scale.",
            "definitions": {"grade:3": "Mild: some papules and pustules, no nodules."},
            "base_version": 0,
        },
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["version"] == 1 and "<strong>IGA</strong>" in resp.json["body_html"]
    assert [e.details["version"] for e in events(db, "guidelines.update")] == [1]
    # a save over a newer version is refused, nothing lost
    stale = write(client, "put", url, json={"body": "old", "base_version": 0})
    assert stale.status_code == 409 and stale.json["error"]["current_version"] == 1
    # an answer the project does not have is refused with a clear message
    bad = write(client, "put", url, json={"body": "x", "definitions": {"grade:9": "?"}})
    assert bad.status_code == 422 and "answers" in bad.json["error"]["message"]

    reader = login_as(study["rater"])
    got = reader.get(url)
    assert got.status_code == 200
    section = next(s for s in got.json["sections"] if s["target"] == "grade:3")
    assert section["label"] == "3 · Mild" and "papules" in section["definition"]
    assert write(reader, "put", url, json={"body": "mine"}).status_code == 403
    assert login_as(study["outsider"]).get(url).status_code == 403


def test_reference_images_go_through_the_import_checks_and_never_become_project_images(
    db, study, login_as
):
    project = study["project"]
    client = login_as(study["lead"])
    base = f"/api/v1/projects/{project.id}/reference-images"
    resp = write(
        client,
        "post",
        base,
        data={"target": "grade:4", "caption": "Moderate", "file": (io.BytesIO(png()), "mod.png")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201, resp.json
    ref = resp.json
    assert ref["target"] == "grade:4" and ref["caption"] == "Moderate"
    hostile = write(
        client,
        "post",
        base,
        data={"target": "grade:4", "file": (io.BytesIO(b"<?php evil ?>" * 10), "x.png")},
        content_type="multipart/form-data",
    )
    assert hostile.status_code == 422 and "cannot be used" in hostile.json["error"]["message"]
    again = write(
        client,
        "post",
        base,
        data={"target": "grade:4", "file": (io.BytesIO(png()), "again.png")},
        content_type="multipart/form-data",
    )
    assert again.status_code == 409
    # never an Image of the project (only the raters' one image is): not allocated, queued,
    # exported or trained on
    assert db.scalar(select(func.count(Image.id)).where(Image.project_id == project.id)) == 1
    assert db.scalar(select(func.count(ReferenceImage.id))) == 1
    assert events(db, "reference_image.add")[0].details["target"] == "grade:4"

    rater = login_as(study["rater"])
    shown = rater.get(ref["url"])
    served = PILImage.open(io.BytesIO(shown.data))
    assert shown.status_code == 200 and shown.mimetype == PILImage.MIME[served.format]
    assert served.size == (40, 30)
    section = next(
        s
        for s in rater.get(f"/api/v1/projects/{project.id}/guidelines").json["sections"]
        if s["target"] == "grade:4"
    )
    assert [i["id"] for i in section["images"]] == [ref["id"]]
    assert login_as(study["outsider"]).get(ref["url"]).status_code == 403

    client = login_as(study["lead"])
    assert write(client, "delete", f"{base}/{ref['id']}").status_code == 200
    assert client.get(ref["url"]).status_code == 404
    assert len(events(db, "reference_image.delete")) == 1


def test_a_flag_reaches_the_leads_only_and_the_answer_reaches_its_rater(db, study, login_as):
    project, item = study["project"], study["item"]
    rater = login_as(study["rater"])
    url = f"/api/v1/items/{item.public_id}/flag"
    resp = write(rater, "put", url, json={"unsure": True, "comment": "Nodule or papule?"})
    assert resp.status_code == 200 and resp.json["unsure"] is True and resp.json["answer"] is None
    label = write(
        rater,
        "put",
        f"/api/v1/items/{item.public_id}/label",
        json={"decision": "graded", "grade": 3, "base_version": 0},
    )
    assert label.status_code == 200
    assert rater.get(f"/api/v1/items/{item.public_id}/label").json["flag"]["comment"] == (
        "Nodule or papule?"
    )
    assert write(rater, "put", url, json={"unsure": "yes"}).status_code == 422
    assert rater.get(f"/api/v1/projects/{project.id}/flags").status_code == 403

    # the other rater of the same image sees nothing of it
    other = login_as(study["other"])
    theirs = other.get(f"/api/v1/items/{study['other_item'].public_id}/label").json["flag"]
    assert theirs == {"unsure": False, "comment": None, "answer": None, "answered_at": None}
    assert other.get(url).status_code == 404

    lead = login_as(study["lead"])
    flags = lead.get(f"/api/v1/projects/{project.id}/flags").json["flags"]
    assert len(flags) == 1
    flag = flags[0]
    assert flag["comment"] == "Nodule or papule?" and flag["label"]["grade"] == 3
    assert flag["rater"]["email"] == study["rater"].email
    empty = write(lead, "post", f"/api/v1/projects/{project.id}/flags/{flag['id']}/answer", json={})
    assert empty.status_code == 422
    answered = write(
        lead,
        "post",
        f"/api/v1/projects/{project.id}/flags/{flag['id']}/answer",
        json={"answer": "Papule: under 5 mm."},
    )
    assert answered.status_code == 200
    assert lead.get(f"/api/v1/projects/{project.id}/flags").json["flags"] == []
    assert len(lead.get(f"/api/v1/projects/{project.id}/flags?status=answered").json["flags"]) == 1
    assert lead.get(f"/api/v1/projects/{project.id}/flags?status=bogus").status_code == 422
    assert [
        e.action
        for e in db.scalars(select(AuditEvent).where(AuditEvent.object_type == "item_flag"))
    ] == [
        "flag.set",
        "flag.answer",
    ]

    rater = login_as(study["rater"])
    assert rater.get(url).json["answer"] == "Papule: under 5 mm."
    # changing the note asks again: open for the leads, the earlier answer still shown to the rater
    write(rater, "put", url, json={"unsure": True, "comment": "And this one?"})
    assert rater.get(url).json["answer"] == "Papule: under 5 mm."
    lead = login_as(study["lead"])
    assert len(lead.get(f"/api/v1/projects/{project.id}/flags").json["flags"]) == 1


def test_flags_behave_the_same_on_golden_and_fold_items(db, study, make_item, login_as):
    rater = study["rater"]
    golden = make_item(rater, study["project"])
    golden.is_golden = True
    fold = make_item(rater, study["project"])
    db.flush()
    client = login_as(rater)
    answers = []
    for item in (golden, fold):
        url = f"/api/v1/items/{item.public_id}/flag"
        resp = write(client, "put", url, json={"unsure": True, "comment": "hard"})
        body = dict(resp.json)
        body.pop("item")
        answers.append((resp.status_code, sorted(resp.headers.keys()), body))
    assert answers[0] == answers[1]


def test_pages_write_guidelines_upload_a_reference_and_answer_a_flag(db, study, login_as):
    project = study["project"]
    lead = login_as(study["lead"])
    page = lead.get(f"/projects/{project.id}/guidelines")
    assert page.status_code == 200 and b"Reference images" in page.data
    saved = lead.post(
        f"/projects/{project.id}/guidelines",
        data={
            "csrf_token": lead.csrf,
            "base_version": "0",
            "body": "Grade <b>carefully</b>",
            "def-grade:2": "Almost clear",
        },
    )
    assert saved.status_code == 302
    # without the CSRF token nothing is written
    assert lead.post(f"/projects/{project.id}/guidelines", data={"body": "x"}).status_code == 400
    up = lead.post(
        f"/projects/{project.id}/guidelines/images",
        data={"csrf_token": lead.csrf, "target": "grade:2", "file": (io.BytesIO(png()), "a.png")},
        content_type="multipart/form-data",
    )
    assert up.status_code == 302
    bad = lead.post(
        f"/projects/{project.id}/guidelines/images",
        data={"csrf_token": lead.csrf, "target": "grade:2", "file": (io.BytesIO(b"nope"), "b.png")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422 and b"cannot be used" in bad.data

    reader = login_as(study["rater"])
    read = reader.get(f"/projects/{project.id}/guidelines/read")
    assert read.status_code == 200
    assert b"Grade &lt;b&gt;carefully&lt;/b&gt;" in read.data and b"Almost clear" in read.data
    assert reader.get(f"/projects/{project.id}/guidelines").status_code == 403
    write(
        reader,
        "put",
        f"/api/v1/items/{study['item'].public_id}/flag",
        json={"unsure": True, "comment": "Unclear lighting"},
    )
    lead = login_as(study["lead"])
    flags = lead.get(f"/projects/{project.id}/flags")
    assert flags.status_code == 200 and b"Unclear lighting" in flags.data
    assert b"Raters' flags (1 waiting)" in lead.get(f"/projects/{project.id}").data
    flag_id = lead.get(f"/api/v1/projects/{project.id}/flags").json["flags"][0]["id"]
    sent = lead.post(
        f"/projects/{project.id}/flags/{flag_id}/answer",
        data={"csrf_token": lead.csrf, "answer": "Grade what you see."},
    )
    assert sent.status_code == 302
    assert b"No flag is waiting" in lead.get(f"/projects/{project.id}/flags").data
    assert b"waiting)" not in lead.get(f"/projects/{project.id}").data
