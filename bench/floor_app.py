"""The floor for bench/labeling.py: the same three calls answered by a Flask app that does no work.

No database, no sign-in, no validation: ``next`` answers a fixed item, ``image`` sends one stored
JPEG through the server's wsgi.file_wrapper (as labeler's image route does), and ``submit`` parses the
JSON body and answers ``version: 1`` (with the next item for ``?next=1``). Served by gunicorn with
the same settings and driven by the same simulated raters, its server CPU per cycle is what gunicorn,
werkzeug and Flask cost on this machine before any of labeler's work: the bench prints labeler's
figures as ratios to it, so runs on different machines can be compared.

``bare`` answers the same calls as a plain WSGI callable (no Flask, no werkzeug): what gunicorn
itself costs per cycle, so that the floor splits into the server's share and Flask's.

The image's path comes from BENCH_FLOOR_IMAGE (bench/labeling.py sets it to one of the project's JPEGs).
"""

from __future__ import annotations

import json
import os

from flask import Flask, jsonify, request, send_file

app = Flask(__name__)
_IMAGE = os.environ.get("BENCH_FLOOR_IMAGE", "")
_ITEM = {"id": "floor", "position": 0, "image_url": "/floor/image"}


@app.get("/auth/login")
def ready():
    return "ok"


@app.get("/api/v1/projects/<int:project_id>/queue/next")
def queue_next(project_id: int):
    return jsonify(item=_ITEM, queue={"project": project_id})


@app.get("/floor/image")
def image():
    return send_file(_IMAGE, mimetype="image/jpeg", etag=False, last_modified=None, max_age=0)


@app.put("/api/v1/items/<item_id>/label")
def label(item_id: str):
    body = request.get_json()
    answer = {"item": item_id, "version": 1, "decision": body.get("decision")}
    if request.args.get("next") == "1":
        answer["next"] = _ITEM
    return jsonify(answer)


def bare(environ, start_response):
    """The same calls with nothing but WSGI: the image through wsgi.file_wrapper, JSON by hand."""
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    if method == "GET" and path == "/floor/image":
        start_response("200 OK", [("Content-Type", "image/jpeg"), ("Cache-Control", "no-cache")])
        handle = open(_IMAGE, "rb")  # noqa: SIM115 (the server closes it through the wrapper)
        return environ["wsgi.file_wrapper"](handle, 8192)
    if method == "GET" and path == "/auth/login":
        body = b"ok"
    elif method == "GET" and path.endswith("/queue/next"):
        body = json.dumps({"item": _ITEM, "queue": {"project": path.split("/")[4]}}).encode()
    elif method == "PUT" and path.endswith("/label"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        answer = json.loads(environ["wsgi.input"].read(length))
        body = {"item": path.split("/")[4], "version": 1, "decision": answer.get("decision")}
        if "next=1" in environ.get("QUERY_STRING", "").split("&"):
            body["next"] = _ITEM
        body = json.dumps(body).encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    kind = "text/plain" if path == "/auth/login" else "application/json"
    start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]
