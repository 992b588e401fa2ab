"""`labeler deploy nginx`: a production nginx configuration generated from the running app's settings.

The body limits come from the app itself: every route marked `@accepts_upload` (labeler/web.py) gets
a location of its own, found in the url_map, so a new upload route needs no hand-copied path here.
The output is an http-level file (upstream + server blocks) for /etc/nginx/conf.d/labeler.conf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from ..config import (
    GUNICORN_MAX_REQUESTS,
    GUNICORN_MAX_REQUESTS_JITTER,
    GUNICORN_THREADS,
    security_headers,
)
from ..images.serve import ACCEL_PREFIX

# nginx's limit sits this far above the app's, so a body just over the limit is refused by the app
# with its own message (errors.py), while anything bigger is cut off by nginx before it is read
BODY_MARGIN = 64 * 1024
_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9*.-]+$")


class DeployError(ValueError):
    """A bad option: the message says which and why."""


@dataclass(frozen=True)
class UploadRoute:
    rule: str  # the Flask rule, e.g. /api/projects/<int:project_id>/images
    regex: str  # the nginx location regex matching it
    max_bytes: int  # the app's limit for the body


def upload_routes(app: Flask) -> list[UploadRoute]:
    """The app's routes that take large bodies, with the nginx regex for each and its limit."""
    routes: dict[str, UploadRoute] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        limit = getattr(view, "max_body_bytes", None)
        if limit is None:
            continue
        limit = limit or app.config["MAX_UPLOAD_BYTES"]
        regex = "^" + _rule_regex(rule.rule) + "$"
        if regex not in routes or routes[regex].max_bytes < limit:
            routes[regex] = UploadRoute(rule.rule, regex, limit)
    return sorted(routes.values(), key=lambda r: r.rule)


def _rule_regex(rule: str) -> str:
    out, pos = [], 0
    for match in _CONVERTER.finditer(rule):
        out.append(_literal(rule[pos : match.start()]))
        kind = match.group(1) or "default"
        out.append("[0-9]+" if kind in {"int", "index"} else "[^/]+")
        pos = match.end()
    out.append(_literal(rule[pos:]))
    return "".join(out)


def _literal(text: str) -> str:
    return re.escape(text).replace("\\/", "/").replace("\\-", "-")


def _check_upstream(value: str) -> str:
    match = _HOST_PORT.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise DeployError(f"--upstream must be HOST:PORT (e.g. 10.0.0.5:8000), not {value!r}")
    return value.strip()


def render(
    app: Flask,
    *,
    upstreams: list[str],
    server_name: str,
    static_root: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    listen: str | None = None,
    files_root: str | None = None,
) -> str:
    """The configuration text. Raises DeployError for bad options.

    With the app's LABELER_X_ACCEL_REDIRECT on, an internal location sends the files the app has
    authorized from ``files_root`` (default: the app's local storage folder)."""
    if not upstreams:
        raise DeployError("give at least one --upstream HOST:PORT (an app server running gunicorn)")
    servers = [_check_upstream(u) for u in upstreams]
    if not _SERVER_NAME.match(server_name):
        raise DeployError(
            f"--server-name must be a host name such as labeler.example.org, not {server_name!r}"
        )
    if bool(tls_cert) != bool(tls_key):
        raise DeployError("give both --tls-cert and --tls-key, or neither")
    static = Path(static_root or app.static_folder or "").resolve()
    if not (static / "css").is_dir():
        raise DeployError(f"--static-root {static} does not hold the app's static files (no css/)")
    tls = bool(tls_cert)
    listen = listen or ("443" if tls else "80")
    if tls and not listen.endswith(" ssl"):
        listen += " ssl"
    default_body = app.config["MAX_CONTENT_LENGTH"] + BODY_MARGIN
    hsts = 'add_header Strict-Transport-Security "max-age=31536000" always;' if tls else ""
    # the headers the app sets on its own answers (labeler/__init__.py), for the files nginx serves
    static_headers = "\n".join(
        f'        add_header {name} "{value}" always;'
        for name, value in security_headers(app.config)
    )
    if hsts:
        static_headers += "\n        " + hsts
    upload_locations = "\n".join(
        f"""    # {route.rule}: the app takes {route.max_bytes} bytes here (@accepts_upload)
    location ~ {route.regex} {{
        client_max_body_size {route.max_bytes + BODY_MARGIN};
        proxy_read_timeout 300s;   # the body is checked and stored before the answer
        proxy_send_timeout 300s;
        proxy_pass http://labeler_app;
    }}"""
        for route in upload_routes(app)
    )
    upstream_lines = "\n".join(f"    server {s} max_fails=1 fail_timeout=10s;" for s in servers)
    accel_location = _accel_location(app, files_root, static_headers)
    tls_lines = ""
    redirect = ""
    if tls:
        tls_lines = f"""
    ssl_certificate     {tls_cert};
    ssl_certificate_key {tls_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:labeler_tls:10m;
    {hsts}"""
        redirect = f"""
server {{
    listen 80;
    server_name {server_name};
    return 301 https://$host$request_uri;
}}
"""
    return f"""# labeler behind nginx: generated by `labeler deploy nginx`; regenerate after upgrading labeler
# (the upload locations come from the app's routes). Install as /etc/nginx/conf.d/labeler.conf.
# Each app server runs with LABELER_TRUSTED_PROXIES=1, so the app reads the client's address and
# https from the X-Forwarded-* headers set below, and from nobody else. Never expose gunicorn itself:
# nginx reads whole requests before an app thread sees them (request buffering), so slow clients
# (one header line every few seconds, a body trickling in) tie up nginx's cheap connections, not
# gunicorn's few threads. Measured app-server settings (README, Production): gunicorn wsgi:app
# --worker-class gthread --workers <cores> --threads {GUNICORN_THREADS} --max-requests {GUNICORN_MAX_REQUESTS} --max-requests-jitter {GUNICORN_MAX_REQUESTS_JITTER}.

upstream labeler_app {{
{upstream_lines}
    keepalive 16;
    # idle connections to the app servers are closed by nginx first: gunicorn closes one idle for its
    # --keep-alive (2 s by default), and a request nginx sent on a connection gunicorn had just closed
    # fails; a POST is never retried (see below) and would answer 502
    keepalive_timeout 1s;
}}
{redirect}
server {{
    listen {listen};
    server_name {server_name};
{tls_lines}
    # the whole request header within 10 s (a total, not per line); at most 10 s between two reads
    # of a body; slow readers of answers are cut after 30 s without progress
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 30s;
    keepalive_timeout 15s;
    # JSON and forms: the app's 1 MB limit (MAX_CONTENT_LENGTH); uploads get their own below
    client_max_body_size {default_body};
    client_body_buffer_size 256k;  # larger bodies are buffered to a temporary file
    proxy_request_buffering on;    # the default, said out loud: the app sees only complete bodies
    proxy_buffering on;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;   # replaced, never appended: a client's own is dropped
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_connect_timeout 2s;
    proxy_read_timeout 60s;

    # Failover: when an app server refuses or drops the connection (it died, it restarts), nginx
    # tries the next one. Only idempotent requests (GET, HEAD, PUT, DELETE...) are retried: nginx
    # never resends a POST it has already sent (no `non_idempotent` here), because the dead server
    # may have committed it (a label saved, an import stored) and a second copy would do it twice.
    # Such a POST answers 502 and the page or client sends it again itself.
    proxy_next_upstream error timeout http_502 http_503;
    proxy_next_upstream_tries 2;
    proxy_next_upstream_timeout 10s;

    # static files straight from disk, with the headers the app sets on its own answers
    location /static/ {{
        alias {static}/;
        expires 1h;
        # Debian's mime.types lacks .mjs (onnxruntime-web's ES modules must be served as JavaScript)
        default_type text/javascript;
{static_headers}
    }}

{upload_locations}
{accel_location}
    location / {{
        proxy_pass http://labeler_app;
    }}
}}
"""


def _accel_location(app: Flask, files_root: str | None, headers: str) -> str:
    """The internal location for X-Accel-Redirect answers, or nothing when the app does not send them."""
    if not app.config.get("X_ACCEL_REDIRECT"):
        return ""
    if files_root is None:
        local = getattr(app.extensions.get("labeler_storage"), "root", None)
        if local is None:
            raise DeployError(
                "LABELER_X_ACCEL_REDIRECT needs the local storage backend (nginx reads the files "
                "from disk); unset it for Azure Blob Storage"
            )
        files_root = str(local)
    root = Path(files_root).resolve()
    return f"""
    # images and tiles the app has authorized (LABELER_X_ACCEL_REDIRECT=true): the app answers with
    # X-Accel-Redirect and nginx sends the file from disk (ranges too). internal: a client asking for
    # this path gets 404. Blinding as in the app: no ETag, no Last-Modified, no file name; the app's
    # Cache-Control (private, no-store) is kept from its answer.
    location {ACCEL_PREFIX} {{
        internal;
        alias {root}/;
        etag off;
        if_modified_since off;
        add_header Last-Modified "" always;
{headers}
    }}
"""
