"""Every API route from the OpenAPI document, with hostile values in each parameter and body field: no 5xx.

A hand-written generator rather than schemathesis: schemathesis 4.32 reads this document, but its
pytest fixture integration (needed for the per-test app and rolled-back database) fails under pytest
9.2 ("'Function' object has no attribute '_nodeid'") and it brings some twenty packages. This one is
deterministic (the same requests on every run and on both databases) and needs no dependency.
The caller holds the rater, lead and admin roles and is a rater and lead of the project, so every
route is reachable; the baseline values are valid, and each request changes one thing.
"""

from __future__ import annotations

import io
import json
import time
from urllib.parse import quote

import pytest
from PIL import Image as PILImage

from labeler.guidelines.services import add_reference_image
from labeler.images.tiles import build_pyramids
from labeler.training.models import ModelKind, RunStatus, TrainingRun

INT_STRINGS = [
    "0",
    "-1",
    "1.5",
    "NaN",
    "Infinity",
    "2147483647",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "1" + "0" * 20,
    "1" + "0" * 5000,
]
TEXT_STRINGS = ["", " ", "%00", "a%00b", "%ED%A0%80", "%FF%FE", "%0D%0A", "x" * 5000]
# raw JSON fragments, written into the body as they are (several are not what json.dumps writes)
JSON_VALUES = [
    "0",
    "-1",
    "1.5",
    "2147483648",
    "-2147483649",
    "9223372036854775808",
    "-9223372036854775809",
    "1" + "0" * 20,
    "1" + "0" * 5000,
    "1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    '""',
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"x\\udfffy"',
    '"\\u001b[31m"',
    '"=HYPERLINK(\\"http://x\\")"',
    json.dumps("x" * 100_000),
    "true",
    "null",
    "[]",
    '[null, 1, "a"]',
    '["\\u0000"]',
    '["\\ud800"]',
    "[2147483648]",
    "{}",
    '{"a": {"b": []}}',
    "[" * 50_000 + "]" * 50_000,
]
BODIES = [
    b"",
    b"not json",
    b"null",
    b"[]",
    b"NaN",
    b'"\\ud800"',
    b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 60_000 + b"1" + b"}" * 60_000,
    b'{"\\ud800": 1, "\\u0000": 2}',
    b'{"x": "' + b"y" * (2 * 1024 * 1024) + b'"}',  # past the 1 MB JSON limit
]


def _jpeg() -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (32, 32), (200, 150, 120)).save(buf, "JPEG")
    return buf.getvalue()


def _body_text(fields: dict[str, str]) -> bytes:
    return ("{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}").encode()


def _requests(doc: dict, path_values: dict, body_values: dict):
    """(method, url, kwargs) for each hostile variation of each operation."""
    for template, ops in doc["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters", [])
            # a path parameter without a known value (a new route): 1 for an id, else any text
            path = {
                p["name"]: path_values.get(
                    p["name"], "1" if p.get("schema", {}).get("type") == "integer" else "x"
                )
                for p in params
                if p["in"] == "path"
            }
            query = [p for p in params if p["in"] == "query"]
            content = op.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            multipart = "multipart/form-data" in content

            def url(path_over=None, query_string="", template=template, path=path):
                u = template
                for name, value in {**path, **(path_over or {})}.items():
                    u = u.replace("{" + name + "}", value)
                return u + (("?" + query_string) if query_string else "")

            base_body = None
            if schema is not None:
                props = schema.get("properties", {})
                base_body = {k: body_values.get(k, "null") for k in props}
            base = {"data": _body_text(base_body)} if base_body is not None else {}
            ctype = {"content_type": "application/json"} if base_body is not None else {}

            known = all(name in path_values for name in path)  # else the ids may not exist
            yield method, url(), {**base, **ctype, "baseline": known}
            for name in path:
                for value in (*INT_STRINGS, *TEXT_STRINGS):
                    yield method, url({name: value}), {**base, **ctype}
            for p in query:
                for value in (*INT_STRINGS, *TEXT_STRINGS):
                    yield method, url(query_string=f"{p['name']}={value}"), {**base, **ctype}
            if base_body is not None:
                for field in base_body:
                    for value in JSON_VALUES:
                        body = {**base_body, field: value}
                        yield method, url(), {"data": _body_text(body), **ctype}
                for extra in ({"base_version": v} for v in ("-1", "2147483648", "1e400")):
                    yield method, url(), {"data": _body_text({**base_body, **extra}), **ctype}
            if method in ("post", "put"):
                for raw in BODIES:
                    yield method, url(), {"data": raw, "content_type": "application/json"}
                yield (
                    method,
                    url(),
                    {"data": _body_text(base_body or {}), "content_type": "text/plain"},
                )
                yield method, url(), {"data": {"x": "\x00"}, "content_type": None}
            if multipart:
                for files in (
                    {},
                    {"files": (io.BytesIO(b""), "")},
                    {"files": (io.BytesIO(b"\x00" * 100), "a\x00b.jpg")},
                    {"image": (io.BytesIO(b"not an image"), "x.png")},
                    {"files": (io.BytesIO(_jpeg()), quote("\udc80", errors="surrogatepass"))},
                ):
                    yield method, url(), {"data": files, "content_type": "multipart/form-data"}


@pytest.fixture()
def world(app, db, everyone):
    user, other, project, item, raw = everyone
    reference = add_reference_image(
        db,
        user,
        project,
        target="general",
        caption=None,
        filename="ref.jpg",
        data=_jpeg(),
        storage=app.extensions["labeler_storage"],
    )
    # tiles are built by a job after an import (not on a rater's request): build this item's here
    build_pyramids(db, app.config, project, [item.image_id], app.extensions["labeler_storage"])
    # a queued run of this project to read (PostgreSQL's sequences are not rolled back with the
    # earlier tests, so a fixed id such as 1 may name no run here)
    run = TrainingRun(project_id=project.id, kind=ModelKind.quality, status=RunStatus.queued)
    db.add(run)
    db.flush()
    path_values = {
        "project_id": str(project.id),
        "run_id": str(run.id),
        "image_id": "1",
        "public_id": item.public_id,
        "model_id": "quality-20260101T000000-abcdef",
        "level": "0",  # a deep-zoom tile every image has (level 0 is 1x1)
        "col": "0",
        "row": "0",
        "ref_id": str(reference.id),  # a reference image of the project's guidelines
        "kind": "thumb",
    }
    body_values = {
        "name": '"fuzzed project"',
        "protocol": '"quality"',
        "decision": '"lesion"',
        "icd10": '"L70.0"',
        "explanations": "[]",
        "email": json.dumps(other.email),
        "raters": json.dumps([user.email, other.email]),
        "image_id": "1",
        "kind": '"quality"',
        "reason": '"later"',
    }
    return {"Authorization": f"Bearer {raw}"}, path_values, body_values


def test_no_route_answers_5xx_to_hostile_input(client, world, capsys):
    headers, path_values, body_values = world
    doc = client.get("/api/v1/openapi.json").json
    sent, ok, failures, unclear, baselines = 0, 0, [], [], {}
    started = time.monotonic()
    for method, url, kwargs in _requests(doc, path_values, body_values):
        baseline = kwargs.pop("baseline", False)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        resp = client.open(url, method=method.upper(), headers=headers, **kwargs)
        if baseline:
            baselines[f"{method.upper()} {url}"] = resp.status_code
        sent += 1
        status = resp.status_code
        ok += status < 300
        if status >= 500:
            failures.append(
                f"{method.upper()} {url[:120]} {str(kwargs.get('data'))[:120]} -> {status}"
            )
        elif status >= 400 and resp.is_json:
            message = (resp.json or {}).get("error", {}).get("message")
            if not message:
                unclear.append(f"{method.upper()} {url[:120]} -> {status} without a message")
        elif status >= 400:
            unclear.append(f"{method.upper()} {url[:120]} -> {status} not JSON")
        resp.close()
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nAPI fuzz: {sent} requests, {len(failures)} answered 5xx, {ok} accepted, "
            f"{elapsed:.1f} s"
        )
    assert sent > 1000
    # the baseline values are valid, so the hostile ones get past authentication to the services:
    # every read of a known object answers 2xx (writes may rightly refuse: already allocated, not
    # tied, unknown model; a new route's placeholder id may name nothing)
    reads = {op: status for op, status in baselines.items() if op.startswith("GET ")}
    assert len(reads) > 10
    assert not {op: status for op, status in reads.items() if status >= 300}
    assert not failures, "\n".join(failures[:40])
    assert not unclear, "\n".join(unclear[:40])
