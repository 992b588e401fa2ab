"""The webhooks page, API and CLI: leads of the project and admins only, CSRF on session writes, the
secret shown once, refused targets in words, the delivery log page with redelivery."""

# ruff: noqa: F811  (fixtures imported from webhook_fixtures are used as arguments)
from __future__ import annotations

import re

from sqlalchemy import select
from webhook_fixtures import (  # noqa: F401  (fixtures)
    drain,
    endpoint_factory,
    loopback_allowed,
    receiver,
)

from labeler.api.openapi import document
from labeler.events import emit
from labeler.projects.models import MemberRole
from labeler.projects.services import add_member
from labeler.webhooks.models import WebhookDelivery, WebhookEndpoint


def test_a_lead_registers_a_webhook_on_the_page_and_sees_the_secret_once(
    app, db, make_user, make_project, login_as, loopback_allowed, receiver
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    page = client.get(f"/projects/{project.id}/webhooks")
    assert page.status_code == 200 and "No webhooks yet" in page.get_data(as_text=True)
    form = {"url": receiver.url(), "events": ["label.submitted", "project.completed"]}
    assert client.post(f"/projects/{project.id}/webhooks", data=form).status_code == 400  # no CSRF
    resp = client.post(f"/projects/{project.id}/webhooks", data={**form, "csrf_token": client.csrf})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 201
    secret = re.search(r'id="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<', html).group(1)
    endpoint = db.scalar(select(WebhookEndpoint).where(WebhookEndpoint.project_id == project.id))
    assert endpoint.secret == secret and endpoint.events == ["label.submitted", "project.completed"]
    db.refresh(project)
    assert project.webhook_events == ["label.submitted", "project.completed"]
    again = client.get(f"/projects/{project.id}/webhooks").get_data(as_text=True)
    assert receiver.url() in again and secret not in again
    # the delivery log page, with one delivered event, and redelivery by hand
    emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    drain(app)
    log = client.get(f"/projects/{project.id}/webhooks/{endpoint.id}")
    text = log.get_data(as_text=True)
    assert log.status_code == 200 and "label.submitted" in text and "succeeded" in text
    delivery = db.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    redo = client.post(
        f"/projects/{project.id}/webhooks/deliveries/{delivery.id}/redeliver",
        data={"csrf_token": client.csrf},
    )
    assert redo.status_code == 302
    drain(app)
    assert len(receiver.requests) == 2
    # removed: no more events for the project
    endpoint_id = endpoint.id
    gone = client.post(
        f"/projects/{project.id}/webhooks/{endpoint_id}/delete", data={"csrf_token": client.csrf}
    )
    assert gone.status_code == 302
    db.expire_all()
    assert db.get(WebhookEndpoint, endpoint_id) is None
    assert db.get(type(project), project.id).webhook_events is None


def test_the_page_refuses_bad_input_in_words(app, make_user, make_project, login_as):
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    url = f"/projects/{project.id}/webhooks"
    cases = [
        ({"url": "http://127.0.0.1:9/x", "events": ["label.submitted"]}, "loopback"),
        ({"url": "http://10.0.0.7/x", "events": ["label.submitted"]}, "private"),
        ({"url": "http://169.254.169.254/latest", "events": ["label.submitted"]}, "link-local"),
        ({"url": "file:///etc/passwd", "events": ["label.submitted"]}, "https://"),
        ({"url": "https://example.org/x"}, "choose at least one event"),
        ({"url": "https://example.org/x", "events": ["label.deleted"]}, "unknown event"),
    ]
    for form, words in cases:
        resp = client.post(url, data={**form, "csrf_token": client.csrf})
        assert resp.status_code == 422, (form, resp.status_code)
        assert words in resp.get_data(as_text=True), (form, words)
    assert "whsec_" not in resp.get_data(as_text=True)


def test_only_the_projects_leads_and_admins_manage_its_webhooks(
    app, db, make_user, make_project, login_as, endpoint_factory, receiver
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    endpoint, _secret = endpoint_factory(project, receiver.url(), actor=lead)
    emit(db, "label.submitted", project.id, {"version": 1})
    db.flush()
    delivery = db.scalar(select(WebhookDelivery))
    other_lead = make_user(None, "lead")  # leads another project, not this one
    rater = make_user(None, "rater")
    add_member(db, None, project, rater, MemberRole.rater)
    admin = make_user(None, "admin")
    db.flush()
    routes = [
        ("GET", f"/projects/{project.id}/webhooks"),
        ("GET", f"/projects/{project.id}/webhooks/{endpoint.id}"),
        ("POST", f"/projects/{project.id}/webhooks/deliveries/{delivery.id}/redeliver"),
        ("GET", f"/api/v1/projects/{project.id}/webhooks"),
        ("GET", f"/api/v1/webhooks/{endpoint.id}"),
        ("GET", f"/api/v1/webhooks/{endpoint.id}/deliveries"),
        ("POST", f"/api/v1/webhook-deliveries/{delivery.id}/redeliver"),
        ("DELETE", f"/api/v1/webhooks/{endpoint.id}"),
    ]
    for user in (other_lead, rater):
        client = login_as(user)
        for method, url in routes:
            resp = client.open(
                url,
                method=method,
                headers={"X-CSRFToken": client.csrf},
                data={"csrf_token": client.csrf},
            )
            assert resp.status_code == 403, (user.email, method, url, resp.status_code)
    client = login_as(admin)
    for method, url in routes:
        resp = client.open(
            url,
            method=method,
            headers={"X-CSRFToken": client.csrf},
            data={"csrf_token": client.csrf},
        )
        assert resp.status_code in (200, 202, 204, 302), (method, url, resp.status_code)


def test_the_api_registers_lists_and_removes(
    app, db, make_user, make_project, login_as, loopback_allowed, receiver
):
    lead = make_user(None, "lead")
    project = make_project(lead)
    client = login_as(lead)
    url = f"/api/v1/projects/{project.id}/webhooks"
    body = {"url": receiver.url(), "events": ["tie.adjudicated"], "description": "lab pipeline"}
    assert client.post(url, json=body).status_code == 400  # a session write needs its CSRF header
    resp = client.post(url, json=body, headers={"X-CSRFToken": client.csrf})
    assert resp.status_code == 201 and resp.json["secret"].startswith("whsec_")
    endpoint_id = resp.json["id"]
    listed = client.get(url).json["webhooks"]
    assert [w["id"] for w in listed] == [endpoint_id] and "secret" not in listed[0]
    assert client.get(f"/api/v1/webhooks/{endpoint_id}").json["description"] == "lab pipeline"
    bad = client.post(url, json={**body, "events": ["nope"]}, headers={"X-CSRFToken": client.csrf})
    assert bad.status_code == 422 and "unknown event" in bad.json["error"]["message"]
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = ()
    refused = client.post(url, json=body, headers={"X-CSRFToken": client.csrf})
    assert refused.status_code == 422 and "loopback" in refused.json["error"]["message"]
    gone = client.delete(f"/api/v1/webhooks/{endpoint_id}", headers={"X-CSRFToken": client.csrf})
    assert gone.status_code == 204 and client.get(url).json["webhooks"] == []
    assert client.get(f"/api/v1/webhooks/{endpoint_id}").status_code == 404


def test_the_openapi_document_lists_the_events():
    doc = document()
    schema = doc["paths"]["/api/v1/projects/{project_id}/webhooks"]["post"]["requestBody"]
    events = schema["content"]["application/json"]["schema"]["properties"]["events"]
    assert events["items"]["enum"] == [
        "label.submitted",
        "allocation.changed",
        "project.completed",
        "training_run.finished",
        "tie.adjudicated",
    ]


def test_the_cli_adds_lists_and_removes(
    app, db, runner, make_user, make_project, loopback_allowed, receiver
):
    project = make_project(make_user(None, "lead"))
    out = runner.invoke(
        args=["webhooks", "add", str(project.id), receiver.url(), "--event", "label.submitted"]
    )
    assert out.exit_code == 0, out.output
    assert re.search(r"secret whsec_\S+", out.output)
    endpoint_id = int(re.search(r"webhook (\d+)", out.output).group(1))
    listed = runner.invoke(args=["webhooks", "list", str(project.id)])
    assert receiver.url() in listed.output and "whsec_" not in listed.output
    refused = runner.invoke(
        args=["webhooks", "add", str(project.id), "http://10.0.0.1/", "--event", "label.submitted"]
    )
    assert refused.exit_code != 0 and "private" in refused.output
    assert runner.invoke(args=["webhooks", "remove", str(endpoint_id)]).exit_code == 0
    assert runner.invoke(args=["webhooks", "list", str(project.id)]).output.strip() == ""
