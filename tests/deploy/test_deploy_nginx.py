"""`labeler deploy nginx` and the trusted-proxy setting: the configuration follows the app's routes and
limits, refuses bad options in words, passes `nginx -t`, and ProxyFix trusts exactly the configured hops."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from flask import request

from labeler import create_app
from labeler.config import ConfigError
from labeler.deploy.nginx import BODY_MARGIN, render, upload_routes

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if shutil.os.path.exists("/usr/sbin/nginx") else None
)


def _locations(text: str) -> dict[str, int]:
    """{location regex: client_max_body_size} of the regex locations in the config."""
    found = re.findall(r"location ~ (\S+) \{\s*client_max_body_size (\d+);", text)
    return {regex: int(size) for regex, size in found}


def test_upload_locations_come_from_the_url_map(app):
    text = render(app, upstreams=["127.0.0.1:8001", "127.0.0.1:8002"], server_name="labeler.test")
    marked = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if hasattr(app.view_functions[rule.endpoint], "max_body_bytes")
    }
    assert "/api/v1/projects/<int:project_id>/images" in marked and len(marked) >= 4
    locations = _locations(text)
    routes = upload_routes(app)
    assert {r.rule for r in routes} == marked
    for route in routes:
        regex = re.compile(route.regex)
        assert locations[route.regex] == route.max_bytes + BODY_MARGIN
        # the regex matches the route with ids filled in, and not its neighbours
        sample = re.sub(r"<int:\w+>", "17", route.rule)
        sample = re.sub(r"<[^>]+>", "m-1", sample)
        assert regex.match(sample), (route.regex, sample)
        assert not regex.match(sample + "/x") and not regex.match("/x" + sample)
    upload = next(r for r in routes if r.rule.endswith("/projects/<int:project_id>/images"))
    assert upload.max_bytes == app.config["MAX_UPLOAD_BYTES"]
    assert not re.compile(upload.regex).match("/api/v1/projects/abc/images")
    # everything else: the app's 1 MB (plus the margin that lets the app answer in its own words)
    default = re.search(r"\n    client_max_body_size (\d+);", text)
    assert int(default.group(1)) == app.config["MAX_CONTENT_LENGTH"] + BODY_MARGIN
    for line in ("server 127.0.0.1:8001", "server 127.0.0.1:8002", "proxy_request_buffering on;"):
        assert line in text
    assert "non_idempotent" not in text.split("proxy_next_upstream ", 1)[1].split(";")[0]
    assert f"alias {app.static_folder}/;" in text


def test_nginx_closes_idle_upstream_connections_before_gunicorn_does(app):
    """A request nginx sends on a kept-alive connection that gunicorn closes at that moment fails,
    and a POST is not retried (502: CI saw one on a 2 MB upload). nginx must give up idle upstream
    connections before gunicorn's own keep-alive (its default: the README's command sets none)."""
    from gunicorn.config import Keepalive

    text = render(app, upstreams=["127.0.0.1:8001"], server_name="labeler.test")
    upstream = re.search(r"upstream labeler_app \{(.*?)\}", text, re.DOTALL).group(1)
    assert re.search(r"\n    keepalive \d+;", upstream)
    idle = re.search(r"keepalive_timeout (\d+)s;", upstream)
    assert idle and int(idle.group(1)) < Keepalive.default


def test_upload_limit_follows_the_setting(tmp_path, database_url):
    app = create_app(
        {
            "LABELER_ENV": "test",
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "i"),
            "STORAGE_PATH": str(tmp_path / "f"),
            "AUTH_MODE": "dev",
            "MAX_UPLOAD_BYTES": 3 * 1024 * 1024,
        }
    )
    text = render(app, upstreams=["10.0.0.5:8000"], server_name="labeler.test")
    sizes = set(_locations(text).values())
    assert 3 * 1024 * 1024 + BODY_MARGIN in sizes


def test_tls_security_headers_and_redirect(app):
    text = render(
        app,
        upstreams=["10.0.0.5:8000"],
        server_name="labeler.example.org",
        tls_cert="/etc/ssl/labeler.pem",
        tls_key="/etc/ssl/labeler.key",
    )
    assert "listen 443 ssl;" in text and "return 301 https://$host$request_uri;" in text
    assert "ssl_certificate     /etc/ssl/labeler.pem;" in text
    static = text.split("location /static/ {", 1)[1].split("}", 1)[0]
    for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert header in static
    # the static files get the app's own Content-Security-Policy and, under TLS, HSTS
    resp = app.test_client().get("/auth/login")
    assert resp.headers["Content-Security-Policy"] in static
    assert "Strict-Transport-Security" in static
    plain = render(app, upstreams=["10.0.0.5:8000"], server_name="labeler.example.org")
    assert "Strict-Transport-Security" not in plain and "listen 80;" in plain


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"upstreams": []}, "at least one --upstream"),
        ({"upstreams": ["app1"]}, "HOST:PORT"),
        ({"upstreams": ["app1:99999"]}, "HOST:PORT"),
        ({"server_name": "a b;"}, "--server-name"),
        ({"tls_cert": "/c.pem"}, "both --tls-cert and --tls-key"),
        ({"static_root": "/nonexistent"}, "does not hold the app's static files"),
    ],
)
def test_bad_options_are_refused_in_words(runner, options, message):
    args = ["deploy", "nginx"]
    full = {"upstreams": ["10.0.0.5:8000"], "server_name": "labeler.test", **options}
    for upstream in full.pop("upstreams"):
        args += ["--upstream", upstream]
    flags = {
        "server_name": "--server-name",
        "tls_cert": "--tls-cert",
        "static_root": "--static-root",
    }
    for key, value in full.items():
        args += [flags[key], value]
    if not any(a == "--upstream" for a in args):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and "--upstream" in result.output
        return
    result = runner.invoke(args=args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_prints_a_config_that_nginx_accepts(runner, tmp_path):
    if not NGINX:
        pytest.fail("nginx is not installed: run `make nginx` (Debian's nginx package)")
    result = runner.invoke(
        args=[
            "deploy",
            "nginx",
            "--upstream",
            "127.0.0.1:8001",
            "--upstream",
            "127.0.0.1:8002",
            "--server-name",
            "labeler.test",
            "--listen",
            "127.0.0.1:8443",
        ]
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "labeler.conf").write_text(result.output)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{ include /etc/nginx/mime.types; access_log off; include {tmp_path}/labeler.conf; }}\n"
    )
    check = subprocess.run(
        [NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(main)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def _probe_app(tmp_path, database_url, proxies):
    app = create_app(
        {
            "LABELER_ENV": "test",
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "i"),
            "STORAGE_PATH": str(tmp_path / "f"),
            "AUTH_MODE": "dev",
            "TRUSTED_PROXIES": proxies,
        }
    )
    app.add_url_rule("/_probe", "probe", lambda: f"{request.remote_addr} {request.scheme}")
    return app.test_client()


def test_trusted_proxies_decide_whose_forwarded_headers_count(tmp_path, database_url):
    headers = {"X-Forwarded-For": "6.6.6.6, 10.1.2.3", "X-Forwarded-Proto": "https"}
    off = _probe_app(tmp_path, database_url, "0").get("/_probe", headers=headers)
    assert off.get_data(as_text=True) == "127.0.0.1 http"  # the default ignores them
    one = _probe_app(tmp_path, database_url, "1").get("/_probe", headers=headers)
    assert one.get_data(as_text=True) == "10.1.2.3 https"  # the last hop, set by nginx
    two = _probe_app(tmp_path, database_url, 2).get("/_probe", headers=headers)
    assert two.get_data(as_text=True).startswith("6.6.6.6 ")


@pytest.mark.parametrize("value", ["-1", "one", "11", "1.5"])
def test_trusted_proxies_setting_is_checked(tmp_path, database_url, value):
    with pytest.raises(ConfigError, match="LABELER_TRUSTED_PROXIES must be a whole number"):
        _probe_app(tmp_path, database_url, value)
