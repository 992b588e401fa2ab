"""The floor for bench/labeling.py: the same three calls answered by a Flask app that does no work.

No database, no sign-in, no validation: ``next`` answers a fixed item, ``image`` sends one stored
JPEG through the server's wsgi.file_wrapper (as labeler's image route does), and ``submit`` parses the
JSON body and answers ``version: 1`` (with the next item for ``?next=1``). Served by gunicorn with
the same settings and driven by the same simulated raters, its server CPU per cycle is what gunicorn,
werkzeug and Flask cost on this machine before any of labeler's work: the bench prints labeler's
figures as ratios to it, so runs on different machines can be compared.

The image's path comes from BENCH_FLOOR_IMAGE (bench/labeling.py sets it to one of the project's JPEGs).
"""

from __future__ import annotations

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
