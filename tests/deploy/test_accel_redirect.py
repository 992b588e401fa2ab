"""Images sent by nginx after the app's authorization (LABELER_X_ACCEL_REDIRECT), through a real nginx
configured by `labeler deploy nginx` in front of gunicorn, as an IT team would run them.

The app checks the rater's item and answers with X-Accel-Redirect; nginx sends the file from its
internal location, with the blinding headers (no-store; no ETag, Last-Modified or file name) and byte
ranges; the internal path answers 404 to a client, and another rater's item is refused by the app.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from helpers import fresh_database
from PIL import Image as PILImage

from labeler import create_app
from labeler.images.serve import ACCEL_PREFIX

PG_URL = os.environ.get("LABELER_TEST_DATABASE_URL")
ROOT = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer: {log.read_text(errors='replace')[-2000:]}")


def _setup(env: dict[str, str], images: Path) -> tuple[int, list[str]]:
    """A quality project with the images, two raters on every image, a token each (the CLI)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        app = create_app()
        runner = app.test_cli_runner()

        def cli(*args: str) -> str:
            result = runner.invoke(args=list(args))
            assert result.exit_code == 0, (args, result.output, result.exception)
            return result.stdout

        project_id = int(cli("projects", "create", "accel", "--protocol", "quality").split()[-1])
        cli("images", "import", str(project_id), str(images))
        emails = ["r1@accel.test", "r2@accel.test"]
        tokens = []
        for email in emails:
            cli("users", "add", email, "--name", email[:2], "--role", "rater")
            tokens.append(cli("users", "token", email, "--name", "t").strip().splitlines()[-1])
        cli("allocate", str(project_id), "--raters", ",".join(emails), "--overlap", "2")
        app.extensions["labeler_db"].engine.dispose()
        return project_id, tokens
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_nginx_sends_the_authorized_image_with_the_blinding_headers(tmp_path):
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed: run `make nginx` (Debian's nginx package)")
    images = tmp_path / "src"
    images.mkdir()
    for i in range(3):
        buf = io.BytesIO()
        PILImage.new("RGB", (64, 48), (40 * i, 90, 200 - 40 * i)).save(buf, "JPEG", quality=90)
        (images / f"img{i}.jpg").write_bytes(buf.getvalue())
    with fresh_database(tmp_path, PG_URL) as url:
        env = {
            "LABELER_DATABASE_URL": url,
            "LABELER_INSTANCE_PATH": str(tmp_path / "instance"),
            "LABELER_AUTH": "dev",
            "LABELER_ENV": "development",
            "LABELER_SECRET_KEY": os.urandom(32).hex(),
            "LABELER_TRUSTED_PROXIES": "1",
            "LABELER_X_ACCEL_REDIRECT": "true",
            "LABELER_DOTENV": str(tmp_path / "no.env"),
            "LABELER_ML_SPAWN_WORKER": "false",
            "LABELER_JOBS_LOCAL": "off",
            "LABELER_TILES_AT_IMPORT": "false",
        }
        project_id, tokens = _setup(env, images)
        app_port, nginx_port = _free_port(), _free_port()
        full_env = {**os.environ, **env}
        conf = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "labeler", "deploy", "nginx"]
            + ["--upstream", f"127.0.0.1:{app_port}", "--server-name", "localhost"]
            + ["--listen", f"127.0.0.1:{nginx_port}"],
            cwd=ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert conf.returncode == 0, conf.stderr
        assert f"location {ACCEL_PREFIX}" in conf.stdout and "internal;" in conf.stdout
        ngx = tmp_path / "nginx"
        (ngx / "tmp").mkdir(parents=True)
        (ngx / "labeler.conf").write_text(conf.stdout)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read pytest's 0700 tmp
        (ngx / "nginx.conf").write_text(
            f"{user}worker_processes 1; pid {ngx}/nginx.pid; error_log {ngx}/error.log;\n"
            "events { worker_connections 64; }\n"
            f"http {{ include /etc/nginx/mime.types; access_log off;\n"
            f"client_body_temp_path {ngx}/tmp/body; proxy_temp_path {ngx}/tmp/proxy;\n"
            f"fastcgi_temp_path {ngx}/tmp/f; uwsgi_temp_path {ngx}/tmp/u; scgi_temp_path {ngx}/tmp/s;\n"
            f"include {ngx}/labeler.conf; }}\n"
        )
        app_log = (tmp_path / "gunicorn.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{app_port}"]
            + ["--workers", "1", "--threads", "2", "--worker-class", "gthread"]
            + ["--no-control-socket"],
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=app_log,
            stderr=subprocess.STDOUT,
        )
        nginx = subprocess.Popen(
            [NGINX, "-p", str(ngx), "-c", str(ngx / "nginx.conf"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            app_base, base = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{nginx_port}"
            _wait(app_base + "/auth/login", server, tmp_path / "gunicorn.log")
            _wait(base + "/auth/login", nginx, ngx / "error.log")
            r1, r2 = ({"Authorization": f"Bearer {t}"} for t in tokens)
            nxt = requests.get(f"{base}/api/v1/projects/{project_id}/queue/next", headers=r1)
            assert nxt.status_code == 200, nxt.text
            image_url = nxt.json()["item"]["image_url"]

            # the app alone answers with the redirect and no bytes: nginx is what sends them
            direct = requests.get(app_base + image_url, headers=r1, timeout=10)
            assert direct.status_code == 200 and direct.content == b""
            internal = direct.headers["X-Accel-Redirect"]
            assert internal.startswith(ACCEL_PREFIX)
            stored = (
                tmp_path / "instance" / "files" / internal.removeprefix(ACCEL_PREFIX)
            ).read_bytes()
            assert stored.startswith(b"\xff\xd8")

            resp = requests.get(base + image_url, headers=r1, timeout=10)
            assert resp.status_code == 200 and resp.content == stored
            assert resp.headers["Content-Type"] == "image/jpeg"
            assert resp.headers["Cache-Control"] == "private, no-store"
            for header in ("ETag", "Last-Modified", "Content-Disposition", "X-Accel-Redirect"):
                assert header not in resp.headers, (header, resp.headers)
            assert resp.headers["X-Content-Type-Options"] == "nosniff"

            ranged = requests.get(base + image_url, headers={**r1, "Range": "bytes=0-9"})
            assert ranged.status_code == 206 and ranged.content == stored[:10]

            # the internal location is not reachable from outside, and the app still authorizes
            assert requests.get(base + internal, headers=r1, timeout=10).status_code == 404
            assert requests.get(base + image_url, headers=r2, timeout=10).status_code == 404
            assert requests.get(base + image_url, timeout=10).status_code == 401
        finally:
            for proc in (nginx, server):
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            app_log.close()
