"""labeler side by side with Label Studio 1.23.2: the same images, the same driver, the same run (issue 14).

Run (from the repository root; takes 10-20 minutes with the defaults on a 2-core machine):

    .venv/bin/python bench/labelstudio.py [--images 2000] [--duration 20] [--annotators 8] [--batch 50]
        [--pg URL] [--ls-venv /tmp/labelstudio-venv] [--workers 4] [--threads 4]

THIS DOWNLOADS LABEL STUDIO. Label Studio is not a dependency of labeler and never goes into .venv or
pyproject.toml: the bench makes its own virtual environment (--ls-venv, default /tmp/labelstudio-venv)
with ``pip install label-studio==1.23.2 uwsgi`` from PyPI (a few hundred MB; uwsgi is compiled, so gcc
and Python's headers are needed), or reuses one that already holds that version. When uwsgi cannot be
built there, Label Studio runs under gunicorn instead and every line that shows its figures says so.

What runs, one after the other, on 127.0.0.1 only:
- The images: --images distinct 512x512 JPEGs (numpy + PIL, about 22 KB each), the same files for both.
- A floor: a plain store of the same bytes (each written to a new file and fsync'd), CPU of this process.
- Label Studio on SQLite in a temporary data directory, under uWSGI configured as its Docker image
  configures it (deploy/uwsgi.ini of HumanSignal/label-studio: master, http router, processes = 2 x
  cores, 1 thread each, lazy-apps, cheaper, max-requests 5000; DEBUG off as in its settings). Two
  deliberate differences, both in Label Studio's favour: Sentry is off (SENTRY_DSN empty; its default
  reports errors and 2% of traces to sentry.io) and no nginx in front (nginx only serves the frontend's
  static files there and proxies everything else, images included, to uWSGI). Set up with manage.py
  migrate and a Django shell script (an admin and one annotator per simulated annotator, legacy API
  tokens on, one organization), then over the API: one project with an image-classification config
  (Choices), maximum annotations = the number of annotators so that each can label every task.
- labeler (this checkout) under gunicorn as bench/labeling.py runs it (start_server: 4 workers x 4
  threads gthread by default), on SQLite, then on PostgreSQL when --pg or LABELER_TEST_DATABASE_URL is
  given (a scratch database next to it, dropped after). Set up through the CLI (db upgrade, projects
  create --protocol quality, an admin and the raters with their API tokens); after the import, allocate
  with every rater on every image.

Measured for each server, from /proc of its process tree (uWSGI's master, http router and workers;
gunicorn's master and workers):
- Import: every image uploaded over HTTP in batches of --batch files per multipart request, as a
  client would. Label Studio: POST /api/projects/{id}/import (one form field per file, named by the
  file, as its upload page sends them: of a repeated field name it keeps the last file); labeler: POST /api/v1/projects/{id}/images (field 'files'). Server
  CPU per uploaded image.
- Labeling, the same driver for both (separate processes, one requests.Session and token each): one
  annotator, then --annotators at once, for --duration seconds each: next -> image -> submit.
    Label Studio: GET /api/projects/{id}/next, GET the task's image URL (/data/upload/...),
                  POST /api/tasks/{id}/annotations?project={id} with a choices result.
    labeler:      GET /api/v1/projects/{id}/queue/next, GET image_url, PUT /api/v1/items/{id}/label,
                  and again with the submit answering with the next item (PUT ...?next=1).
  Server CPU per call (one annotator: the server does nothing else, so the CPU the tree used during each
  call is that call's), per label under load and labels/s, and the load generator's own CPU per label.

CPU is read from /proc/PID/task/*/schedstat (first field: nanoseconds on a CPU, per thread, exact),
summed over every thread of the server's process tree, plus the cutime + cstime (10 ms ticks) of
children the tree reaped (a recycled worker). /proc/PID/stat utime/stime alone count in 10 ms ticks,
too coarse for one call. The machine may be shared: CPU time, not wall time, is the figure to compare.

On PostgreSQL the database's own work runs in its backends, outside gunicorn's tree: their CPU
(the backends of the scratch database, from pg_stat_activity, read the same way) is printed on rows
of its own, not added to labeler's figures. Label Studio on SQLite, like labeler on SQLite, does its
database work inside its workers, so it is in their figures.

The uWSGI http router, configured as in the image (no http-keepalive), closes each connection after
its answer without saying so (no 'Connection: close'), so the driver opens a new connection for each
Label Studio request (as nginx does towards uWSGI in the image); labeler's requests reuse theirs. The
load generator's CPU for Label Studio thus includes a TCP connect per request.

Printed: a line per phase (latencies, labels/s, errors) and one table like issue 14's with the ratio
Label Studio / labeler of each figure. Any error (a non-2xx answer, a wrong body, a failed connection,
a failed setup) makes the exit status 1; --tolerate-ls-5xx excepts Label Studio's own 5xx answers
(on SQLite with concurrent annotators it answers some requests 500 'database is locked'), which are
still counted and printed. Not part of the test suite or CI.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# bench/labeling.py: process_tree, pct, server_env, start_server, wait_ready, free_port, ANSWERS
import labeling

HOST = labeling.HOST
LS_VERSION = "1.23.2"
CHOICES = ("healthy", "lesion", "no_skin", "poor_quality")
LS_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<Choices name="choice" toName="image" choice="single">'
    + "".join(f'<Choice value="{c}"/>' for c in CHOICES)
    + "</Choices></View>"
)
LS_PASSWORD = "bench-" + uuid.uuid4().hex[:12]  # throwaway accounts of a throwaway instance
WARMUP_LOOPS = 3
TICK = os.sysconf("SC_CLK_TCK")


# -- CPU of a process tree ------------------------------------------------------------------------------


def thread_stats(pids: list[int]) -> list[str]:
    """The schedstat files of every thread of these processes."""
    out = []
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        out.extend(f"/proc/{pid}/task/{tid}/schedstat" for tid in tids)
    return out


def sum_schedstat(paths: list[str]) -> tuple[float, bool]:
    """Seconds on CPU of these threads (schedstat's first field, ns); False when one of them is gone."""
    total, complete = 0, True
    for path in paths:
        try:
            with open(path, "rb") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            complete = False
    return total / 1e9, complete


def reaped_cpu(pids: list[int]) -> float:
    """Seconds of CPU of the children these processes have waited for (cutime + cstime, ticks)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16 and 17)
    return total / TICK


def tree_cpu(root: int) -> float:
    """Seconds of CPU the server's process tree has used so far: every live thread's schedstat plus
    the reaped children's time (a worker recycled during a phase still counts)."""
    pids = labeling.process_tree(root)
    return sum_schedstat(thread_stats(pids))[0] + reaped_cpu(pids)


class CallMeter:
    """Per-call server CPU for the one-annotator phase: the tree's threads are listed once and read
    before and after each call (listed again when one is gone, and every 2 s for new workers)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.listed = 0.0
        self.paths: list[str] = []
        self.refresh()

    def refresh(self) -> None:
        self.paths = thread_stats(labeling.process_tree(self.root))
        self.listed = time.monotonic()

    def read(self) -> float:
        if time.monotonic() - self.listed > 2:
            self.refresh()
        value, complete = sum_schedstat(self.paths)
        if not complete:
            self.refresh()
            value = sum_schedstat(self.paths)[0]
        return value


class DbMeter:
    """CPU of the PostgreSQL backends serving one database (same machine): their pids from
    pg_stat_activity, their threads' schedstat. Backends that start and end between two readings
    are missed."""

    def __init__(self, admin_engine, dbname: str) -> None:
        self.engine, self.dbname = admin_engine, dbname

    def snapshot(self) -> dict[int, float]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.dbname}
            ).scalars()
            return {pid: sum_schedstat(thread_stats([pid]))[0] for pid in pids}

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(v - before.get(pid, 0.0) for pid, v in after.items())


# -- the driver: one simulated annotator, in its own process (imports neither tool) ----------------------


def annotator_loop(
    tool: str,
    base: str,
    project_id: int,
    token: str,
    duration: float,
    barrier,
    results,
    server_root: int | None = None,
    submit_next: bool = False,
) -> None:
    """Label until ``duration`` seconds after the barrier: next -> image -> submit, in the tool's API.

    ``tool`` is "ls" (Label Studio) or "labeler". With ``server_root`` (the one-annotator phase) the
    server tree's CPU is read before and after each call and added to that call's kind.
    """
    import requests

    http = requests.Session()
    http.headers["Authorization"] = (
        f"Token {token}" if tool == "ls" else f"Bearer {token}"
    )  # each tool's API token scheme
    out = {
        "next": [],
        "image": [],
        "submit": [],
        "labels": 0,
        "errors": 0,
        "samples": [],
        "exhausted": False,
        "cpu": {"next": 0.0, "image": 0.0, "submit": 0.0},
        "calls": {"next": 0, "image": 0, "submit": 0},
        "client_cpu": 0.0,
        "image_bytes": 0,
        "5xx": 0,
    }
    meter = CallMeter(server_root) if server_root else None
    recording = [False]
    chained: dict = {}
    n = [0]

    def fail(what: str) -> None:
        out["errors"] += 1
        if len(out["samples"]) < 5:
            out["samples"].append(what)

    def call(kind: str, method: str, path: str, ok=(200,), **kw):
        c0 = meter.read() if meter else 0.0
        t0 = time.perf_counter()
        try:
            resp = http.request(method, base + path, timeout=30, **kw)
            resp.content  # noqa: B018  (the whole body read before the server's CPU is read)
            if tool == "ls":
                http.close()  # uWSGI's http router closes each connection after its answer
        except requests.RequestException as exc:
            fail(f"{method} {path}: {exc.__class__.__name__}: {exc}")
            return None
        ms = (time.perf_counter() - t0) * 1000
        if recording[0]:
            if meter:
                out["cpu"][kind] += meter.read() - c0
                out["calls"][kind] += 1
            out[kind].append(ms)
        if resp.status_code not in ok:
            if kind == "next" and tool == "ls" and resp.status_code == 404:
                return resp  # Label Studio: no task left for this annotator
            out["5xx"] += resp.status_code >= 500
            fail(f"{method} {path}: {resp.status_code} {' '.join(resp.text[:400].split())[:200]}")
            return None
        return resp

    def one_loop() -> bool | None:
        """One label; False when the queue is done, None after an error."""
        item = chained.pop("item", None)
        if item is None:
            if tool == "ls":
                resp = call("next", "GET", f"/api/projects/{project_id}/next")
                if resp is None:
                    return None
                if resp.status_code == 404:
                    return False
                task = resp.json()
                item = {"id": task["id"], "image_url": task["data"]["image"]}
            else:
                resp = call("next", "GET", f"/api/v1/projects/{project_id}/queue/next")
                if resp is None:
                    return None
                item = resp.json().get("item")
                if item is None:
                    return False
        resp = call("image", "GET", item["image_url"])
        if resp is None:
            return None
        if not resp.headers.get("Content-Type", "").startswith("image/") or not resp.content:
            fail(f"GET {item['image_url']}: not an image ({resp.headers.get('Content-Type')})")
            return None
        out["image_bytes"] = len(resp.content)
        n[0] += 1
        choice = CHOICES[n[0] % len(CHOICES)]
        if tool == "ls":
            body = {
                "result": [
                    {
                        "from_name": "choice",
                        "to_name": "image",
                        "type": "choices",
                        "value": {"choices": [choice]},
                    }
                ],
                "lead_time": 1.5,
                "project": project_id,
            }
            resp = call(
                "submit",
                "POST",
                f"/api/tasks/{item['id']}/annotations?project={project_id}",
                ok=(201,),
                json=body,
            )
            if resp is None:
                return None
            if not isinstance(resp.json().get("id"), int):
                fail(f"POST annotation of task {item['id']}: unexpected answer {resp.text[:200]}")
                return None
        else:
            body = dict(
                labeling.ANSWERS[n[0] % len(labeling.ANSWERS)],
                base_version=0,
                submission_id=uuid.uuid4().hex,
                time_spent_ms=1500,
            )
            suffix = "?next=1" if submit_next else ""
            resp = call("submit", "PUT", f"/api/v1/items/{item['id']}/label{suffix}", json=body)
            if resp is None:
                return None
            answer = resp.json()
            if answer.get("version") != 1 or (submit_next and "next" not in answer):
                fail(f"PUT label of {item['id']}: unexpected answer {resp.text[:200]}")
                return None
            if submit_next:
                if answer["next"] is None:
                    out["labels"] += recording[0]
                    return False
                chained["item"] = answer["next"]
        out["labels"] += recording[0]
        return True

    try:
        for _ in range(WARMUP_LOOPS):  # connections and caches, not counted
            one_loop()
        barrier.wait(timeout=300)
        recording[0] = True
        end = time.perf_counter() + duration
        cpu0 = time.process_time()
        while time.perf_counter() < end:
            if one_loop() is False:
                out["exhausted"] = True
                break
        out["client_cpu"] = time.process_time() - cpu0
    finally:
        http.close()
        results.put(out)


def run_phase(
    tool: str,
    base: str,
    project_id: int,
    tokens: list[str],
    duration: float,
    server_root: int,
    submit_next: bool = False,
    db_meter: DbMeter | None = None,
) -> dict:
    """One simulated annotator per token at once; merged latencies, counts and CPU seconds."""
    per_call = server_root if len(tokens) == 1 else None

    def measure() -> tuple[dict, float, float]:
        return (db_meter.snapshot() if db_meter else {}, tree_cpu(server_root), time.perf_counter())

    outs, (db0, cpu0, t0), (db1, cpu1, t1) = labeling.run_processes(
        annotator_loop,
        lambda token, barrier, results: (
            tool,
            base,
            project_id,
            token,
            duration,
            barrier,
            results,
            per_call,
            submit_next,
        ),
        tokens,
        measure,
        timeout=300,
        result_timeout=duration + 300,
    )
    wall = t1 - t0
    server_cpu = cpu1 - cpu0
    db_cpu = DbMeter.used(db0, db1) if db_meter else None
    merged = {k: [v for o in outs for v in o[k]] for k in ("next", "image", "submit", "samples")}
    merged.update(
        labels=sum(o["labels"] for o in outs),
        errors=sum(o["errors"] for o in outs),
        server_errors=sum(o["5xx"] for o in outs),
        exhausted=sum(o["exhausted"] for o in outs),
        # from the barrier to the last annotator's end: the last labels started before --duration
        # ran out and finished after it (about a second for Label Studio under load)
        duration=wall,
        server_cpu=server_cpu,
        db_cpu=db_cpu,
        client_cpu=sum(o["client_cpu"] for o in outs),
        cpu={k: sum(o["cpu"][k] for o in outs) for k in ("next", "image", "submit")},
        calls={k: sum(o["calls"][k] for o in outs) for k in ("next", "image", "submit")},
        image_bytes=max(o["image_bytes"] for o in outs),
        loadavg=os.getloadavg()[0],
        annotators=len(tokens),
    )
    return merged


def phase_line(label: str, r: dict) -> str:
    def fmt(name: str) -> str:
        ms = r[name]
        if not ms:
            return f"{name} -"
        return f"{name} p50 {statistics.median(ms):.1f} / p95 {labeling.pct(ms, 0.95):.1f} ms"

    labels = max(1, r["labels"])
    line = (
        f"[{label}] {r['annotators']} annotator(s): {r['labels'] / r['duration']:.1f} labels/s "
        f"({r['labels']} labels), {fmt('next')}, {fmt('image')}, {fmt('submit')}; server CPU "
        f"{1000 * r['server_cpu'] / labels:.2f} ms per label, load generator "
        f"{1000 * r['client_cpu'] / labels:.2f} ms per label; errors {r['errors']}; machine's "
        f"1-min load average {r['loadavg']:.1f} at the end"
    )
    if r["annotators"] == 1:
        line += " (per call: " + ", ".join(
            f"{k} {1000 * r['cpu'][k] / r['calls'][k]:.2f} ms" if r["calls"][k] else f"{k} -"
            for k in r["cpu"]
        )
        line += ")"
    if r["db_cpu"] is not None:
        line += f"; PostgreSQL backends {1000 * r['db_cpu'] / labels:.2f} ms per label"
    if r["exhausted"]:
        line += f"; {r['exhausted']} queue(s) ran out"
    for sample in r["samples"]:
        line += f"\n[{label}]     error: {sample}"
    return line


# -- images and the floor --------------------------------------------------------------------------------


def make_images(folder: Path, count: int) -> list[Path]:
    """Distinct camera-like 512x512 JPEGs without EXIF (smooth skin tones and noise), about 22 KB."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(14)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        base = np.array([205, 160, 135], np.float32) + rng.normal(0, 12, 3)
        coarse = rng.normal(0, 14, (4, 4, 3)).astype(np.float32) + 128
        field = np.asarray(
            Image.fromarray(coarse.clip(0, 255).astype(np.uint8)).resize((512, 512), Image.BICUBIC),
            np.float32,
        )
        img = base + (field - 128) + rng.normal(0, 3.5, (512, 512, 3))
        buf = io.BytesIO()
        Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=85)
        path = folder / f"img{i:05d}.jpg"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def plain_store(images: list[Path], folder: Path) -> float:
    """CPU seconds of this process to write each image's bytes to a new file and fsync it."""
    datas = [p.read_bytes() for p in images]
    folder.mkdir()
    t = time.process_time()
    for i, data in enumerate(datas):
        fd = os.open(folder / f"{i}.jpg", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.process_time() - t


def upload_all(
    base: str,
    path: str,
    auth: str,
    images: list[Path],
    batch: int,
    field_per_file: bool,
    fresh_connections: bool,
    check,
    server_root: int,
    db_meter: DbMeter | None = None,
) -> dict:
    """POST the images in batches of multipart files; server tree CPU and wall time over all of them."""
    import requests

    http = requests.Session()
    http.headers["Authorization"] = auth
    errors, samples = 0, []
    db0 = db_meter.snapshot() if db_meter else {}
    cpu0 = tree_cpu(server_root)
    t0 = time.perf_counter()
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        files = [
            (p.name if field_per_file else "files", (p.name, p.read_bytes(), "image/jpeg"))
            for p in chunk
        ]
        try:
            resp = http.post(base + path, files=files, timeout=600)
            if fresh_connections:
                http.close()  # uWSGI's http router closes each connection after its answer
            problem = check(resp, len(chunk))
        except requests.RequestException as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
        if problem:
            errors += 1
            if len(samples) < 3:
                samples.append(f"POST {path} (files {start}-{start + len(chunk) - 1}): {problem}")
    wall = time.perf_counter() - t0
    server_cpu = tree_cpu(server_root) - cpu0
    db_cpu = DbMeter.used(db0, db_meter.snapshot()) if db_meter else None
    http.close()
    return {
        "cpu": server_cpu,
        "db_cpu": db_cpu,
        "wall": wall,
        "count": len(images),
        "errors": errors,
        "samples": samples,
    }


# -- Label Studio ----------------------------------------------------------------------------------------


def ls_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_ls_venv(venv: Path) -> tuple[Path, str]:
    """The venv with label-studio==LS_VERSION (made or reused) and the server that runs it: 'uwsgi' or
    'gunicorn' (when uwsgi could not be installed)."""
    py = ls_python(venv)

    def version() -> str | None:
        if not py.exists():
            return None
        res = subprocess.run(
            [py, "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        return res.stdout.strip() if res.returncode == 0 else None

    if version() != LS_VERSION:
        print(f"[ls] installing label-studio=={LS_VERSION} and uwsgi into {venv} (from PyPI) ...")
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        res = subprocess.run(
            [py, "-m", "pip", "install", "-q", f"label-studio=={LS_VERSION}", "uwsgi"],
            check=False,
        )
        if res.returncode != 0:
            print(
                "[ls] uwsgi (or Label Studio) failed to install; trying Label Studio with gunicorn"
            )
            subprocess.run(
                [py, "-m", "pip", "install", "-q", f"label-studio=={LS_VERSION}", "gunicorn"],
                check=True,
            )
        if version() != LS_VERSION:
            raise SystemExit(f"[ls] label-studio=={LS_VERSION} is not importable in {venv}")
    if (venv / "bin" / "uwsgi").exists():
        return venv, "uwsgi"
    res = subprocess.run([py, "-m", "pip", "install", "-q", "uwsgi"], check=False)
    if res.returncode == 0 and (venv / "bin" / "uwsgi").exists():
        return venv, "uwsgi"
    print(
        "[ls] !!! uwsgi could not be built here: Label Studio runs under GUNICORN, not as in its image"
    )
    subprocess.run([py, "-m", "pip", "install", "-q", "gunicorn"], check=True)
    return venv, "gunicorn"


def ls_package_dir(venv: Path) -> Path:
    res = subprocess.run(
        [
            ls_python(venv),
            "-c",
            "import label_studio, os; print(os.path.dirname(label_studio.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(res.stdout.strip())


def ls_env(data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "DJANGO_DB": "sqlite",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "SENTRY_DSN": "",  # no reports to sentry.io from a bench (its default); in LS's favour
        "FRONTEND_SENTRY_DSN": "",
        "PYTHONUNBUFFERED": "1",
    }


LS_SETUP = """
import json
from organizations.models import Organization
from users.models import User

admin = User.objects.create_user(email="admin@bench.test", password=PASSWORD)
admin.is_staff = admin.is_superuser = True
admin.save()
org = Organization.create_organization(created_by=admin, title="bench", legacy_api_tokens_enabled=True)
admin.active_organization = org
admin.save(update_fields=["active_organization"])
tokens = []
for i in range(COUNT):
    user = User.objects.create_user(email=f"annotator{i:02d}@bench.test", password=PASSWORD)
    org.add_user(user)
    user.active_organization = org
    user.save(update_fields=["active_organization"])
    tokens.append(user.auth_token.key)
print("BENCH-TOKENS " + json.dumps({"admin": admin.auth_token.key, "annotators": tokens}))
"""


UWSGI_INI = """[uwsgi]
# deploy/uwsgi.ini of Label Studio's Docker image, with the address, logging and stats for a bench
chdir = {chdir}
http = {host}:{port}
module = core.wsgi:application
master = true
cheaper = true
single-interpreter = true
processes = {processes}
threads = 1
vacuum = true
die-on-term = true
buffer-size = 65535
http-timeout = 300
memory-report = true
need-app = true
env = APP_WEBSERVER=uwsgi
ignore-sigpipe = true
ignore-write-errors = true
disable-write-exception = true
harakiri = 120
harakiri-verbose = true
post-buffering = 4096
disable-logging = true
log-5xx = true
enable-threads = true
thunder-lock = true
lazy-apps = true
max-requests = 5000
reload-on-rss = 2048
worker-reload-mercy = 300
"""


def ls_setup(venv: Path, pkg: Path, env: dict[str, str], annotators: int, log: Path) -> dict:
    """manage.py migrate, then the accounts and tokens in a Django shell: {'admin', 'annotators'}."""
    py = str(ls_python(venv))
    with log.open("ab") as fh:
        res = subprocess.run(
            [py, "manage.py", "migrate", "--no-input"],
            cwd=pkg,
            env=env,
            stdout=fh,
            stderr=fh,
            check=False,
        )
    if res.returncode != 0:
        raise SystemExit(f"[ls] manage.py migrate failed (see {log})")
    script = LS_SETUP.replace("PASSWORD", repr(LS_PASSWORD)).replace("COUNT", str(annotators))
    res = subprocess.run(
        [py, "manage.py", "shell", "-c", script],
        check=False,
        cwd=pkg,
        env=env,
        capture_output=True,
        text=True,
    )
    for line in res.stdout.splitlines():
        if line.startswith("BENCH-TOKENS "):
            return json.loads(line.split(" ", 1)[1])
    raise SystemExit(f"[ls] account setup failed: {res.stdout[-500:]}{res.stderr[-2000:]}")


def ls_start(
    venv: Path, pkg: Path, env: dict[str, str], server: str, port: int, tmp: Path, log: Path
) -> tuple[subprocess.Popen, str]:
    processes = 2 * (os.cpu_count() or 1)  # the ini's %(%k * 2)
    if server == "uwsgi":
        ini = tmp / "uwsgi.ini"
        ini.write_text(UWSGI_INI.format(chdir=pkg, host=HOST, port=port, processes=processes))
        cmd = [str(venv / "bin" / "uwsgi"), "--ini", str(ini)]
        what = f"uWSGI as in its Docker image ({processes} processes x 1 thread, http router, lazy-apps)"
    else:
        cmd = [
            str(venv / "bin" / "gunicorn"),
            "core.wsgi:application",
            "--bind",
            f"{HOST}:{port}",
            "--workers",
            str(processes),
            "--log-level",
            "warning",
        ]
        what = (
            f"GUNICORN (uwsgi could not be built; NOT as in its Docker image), {processes} workers"
        )
    proc = subprocess.Popen(
        cmd,
        cwd=pkg,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, what


def wait_http(url: str, proc: subprocess.Popen, name: str, timeout: float = 180) -> None:
    import requests

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with status {proc.returncode}")
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{name} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_ls(args: argparse.Namespace, images: list[Path], tmp: Path) -> dict:
    import requests

    venv, server = ensure_ls_venv(Path(args.ls_venv))
    pkg = ls_package_dir(venv)
    data = tmp / "ls-data"
    data.mkdir()
    env = ls_env(data)
    log = tmp / "ls-server.log"
    n = 1 + args.annotators
    print(f"[ls] Label Studio {LS_VERSION} on SQLite in {data}: migrate and {n} annotators ...")
    t0 = time.perf_counter()
    tokens = ls_setup(venv, pkg, env, n, log)
    print(f"[ls]   set up in {time.perf_counter() - t0:.0f} s")
    port = labeling.free_port()
    base = f"http://{HOST}:{port}"
    proc, what = ls_start(venv, pkg, env, server, port, tmp, log)
    result: dict = {"server": what, "errors": 0}
    try:
        wait_http(base + "/health", proc, "Label Studio")
        pids = labeling.process_tree(proc.pid)
        print(f"[ls] {what} on {base}: {len(pids)} processes")
        admin = {"Authorization": f"Token {tokens['admin']}"}
        resp = requests.post(
            base + "/api/projects",
            headers=admin,
            json={"title": "bench", "label_config": LS_CONFIG, "maximum_annotations": n},
            timeout=60,
        )
        if resp.status_code != 201:
            raise SystemExit(f"[ls] project not created: {resp.status_code} {resp.text[:300]}")
        project_id = resp.json()["id"]

        def check(resp, count: int) -> str | None:
            if resp.status_code != 201:
                return f"{resp.status_code} {resp.text[:200]}"
            if resp.json().get("task_count") != count:
                return f"{resp.json().get('task_count')} tasks for {count} files: {resp.text[:200]}"
            return None

        imp = upload_all(
            base,
            f"/api/projects/{project_id}/import",
            admin["Authorization"],
            images,
            args.batch,
            True,
            True,
            check,
            proc.pid,
        )
        report_import("ls", imp, args.batch, result)
        for name, toks in (("one", tokens["annotators"][:1]), ("load", tokens["annotators"][1:])):
            r = run_phase("ls", base, project_id, toks, args.duration, proc.pid)
            result[name] = r
            result["errors"] += r["errors"]
            result["5xx"] = result.get("5xx", 0) + r["server_errors"]
            print(phase_line("ls", r))
        workers = len(labeling.process_tree(proc.pid))
        print(f"[ls] {workers} processes in the server tree at the end")
    finally:
        stop(proc)
        if result["errors"] or proc.returncode not in (0, -15, 30):
            print(f"[ls] server log (last lines):\n{log_tail(log)}")
    return result


def report_import(label: str, imp: dict, batch: int, result: dict) -> None:
    """Print one server's import figures (and its errors) and add them to its result."""
    result["import"] = imp
    result["errors"] += imp["errors"]
    db = imp.get("db_cpu")
    print(
        f"[{label}] import: {imp['count']} uploads in batches of {batch}: server CPU "
        f"{imp['cpu']:.2f} s ({1000 * imp['cpu'] / imp['count']:.2f} ms per image), "
        f"wall {imp['wall']:.1f} s, errors {imp['errors']}"
        + (
            f"; PostgreSQL backends {1000 * db / imp['count']:.2f} ms per image"
            if db is not None
            else ""
        )
    )
    for sample in imp["samples"]:
        print(f"[{label}]     error: {sample}")


# -- labeler ---------------------------------------------------------------------------------------------


def labeler_cli(env: dict[str, str]):
    """A function running labeler's CLI in this process with ``env``, and the app (to dispose)."""
    from labeler import create_app

    with labeling.environ(env):
        app = create_app()
    runner = app.test_cli_runner()

    def cli(*args: str) -> str:
        with labeling.environ(env):
            result = runner.invoke(args=list(args))
        if result.exit_code != 0:
            raise SystemExit(
                f"labeler {' '.join(args)} failed: {result.output}{result.exception or ''}"
            )
        return result.stdout

    return cli, app


def run_labeler(
    label: str,
    url: str,
    args: argparse.Namespace,
    images: list[Path],
    tmp: Path,
    db_meter: DbMeter | None = None,
) -> dict:
    env = labeling.server_env(url, tmp / "instance")
    n = 2 * (1 + args.annotators)  # two phases, then the same two with ?next=1: fresh queues each
    print(f"[{label}] labeler on {url.split('://')[0]}: project, admin and {n} raters ...")
    cli, app = labeler_cli(env)
    cli("db", "upgrade")
    project_id = int(cli("projects", "create", "bench-ls", "--protocol", "quality").split()[-1])
    cli("users", "add", "admin@bench.test", "--name", "bench-admin", "--role", "admin")
    admin_token = (
        cli("users", "token", "admin@bench.test", "--name", "bench").strip().splitlines()[-1]
    )
    emails = [f"rater{i:02d}@bench.test" for i in range(n)]
    tokens = []
    for email in emails:
        cli("users", "add", email, "--name", email.split("@")[0], "--role", "rater")
        tokens.append(cli("users", "token", email, "--name", "bench").strip().splitlines()[-1])
    app.extensions["labeler_db"].engine.dispose()

    port = labeling.free_port()
    base = f"http://{HOST}:{port}"
    log = tmp / "gunicorn.log"
    server = labeling.start_server(env, port, args.workers, args.threads, log)
    result: dict = {"errors": 0}
    try:
        labeling.wait_ready(base, server, workers=args.workers)
        what = f"gunicorn gthread {args.workers} workers x {args.threads} threads"
        result["server"] = what
        print(f"[{label}] {what} on {base}")

        def check(resp, count: int) -> str | None:
            if resp.status_code != 201:
                return f"{resp.status_code} {resp.text[:200]}"
            got = resp.json()
            if len(got.get("imported") or []) != count:
                return f"{len(got.get('imported') or [])} imported of {count}: {resp.text[:200]}"
            return None

        imp = upload_all(
            base,
            f"/api/v1/projects/{project_id}/images",
            f"Bearer {admin_token}",
            images,
            args.batch,
            False,
            False,
            check,
            server.pid,
            db_meter,
        )
        report_import(label, imp, args.batch, result)
        if imp["errors"]:
            return result
        out = cli(
            "allocate",
            str(project_id),
            "--raters",
            ",".join(emails),
            "--golden-size",
            str(len(images) // 20),
            "--overlap",
            str(n),
            "--seed",
            "2024",
        )
        app.extensions["labeler_db"].engine.dispose()
        print(f"[{label}]   {out.splitlines()[0]}")
        k = 1 + args.annotators
        phases = (
            ("one", tokens[:1], False),
            ("load", tokens[1:k], False),
            ("one_next", tokens[k : k + 1], True),
            ("load_next", tokens[k + 1 :], True),
        )
        for name, toks, chained in phases:
            r = run_phase(
                "labeler", base, project_id, toks, args.duration, server.pid, chained, db_meter
            )
            result[name] = r
            result["errors"] += r["errors"]
            print(phase_line(label + (" ?next=1" if chained else ""), r))
    finally:
        stop(server)
        if result["errors"] or server.returncode not in (0, -15):
            print(f"[{label}] gunicorn log (last lines):\n{log_tail(log)}")
    return result


# -- the table -------------------------------------------------------------------------------------------


def figures(r: dict, chained: bool = False) -> dict:
    one = r.get("one_next" if chained else "one")
    load = r.get("load_next" if chained else "load")
    out: dict = {}
    if one:
        for k in ("next", "image", "submit"):
            out[k] = 1000 * one["cpu"][k] / one["calls"][k] if one["calls"][k] >= 5 else None
        out["cycle1"] = 1000 * one["server_cpu"] / max(1, one["labels"])
        if one["db_cpu"] is not None:
            out["db_cycle1"] = 1000 * one["db_cpu"] / max(1, one["labels"])
        out["image_kb"] = one["image_bytes"] / 1024
    if load:
        labels = max(1, load["labels"])
        out["load"] = 1000 * load["server_cpu"] / labels
        out["rate"] = load["labels"] / load["duration"]
        out["client"] = 1000 * load["client_cpu"] / labels
        if load["db_cpu"] is not None:
            out["db_load"] = 1000 * load["db_cpu"] / labels
    phases = [p for p in (one, load) if p]
    if phases:
        out["errors"] = sum(p["errors"] for p in phases)
    if "import" in r and not chained:
        imp = r["import"]
        out["import_ms"] = 1000 * imp["cpu"] / imp["count"]
        out["import_s"] = imp["cpu"]
        if imp["db_cpu"] is not None:
            out["db_import"] = 1000 * imp["db_cpu"] / imp["count"]
    return out


def ls_title(ls: dict) -> str:
    if not ls:
        return "Label Studio (not run)"
    return "Label Studio (uWSGI)" if "uWSGI" in ls["server"] else "Label Studio (GUNICORN!)"


def print_table(
    ls: dict, columns: list[tuple[str, dict]], floor_ms: float, count: int, args
) -> None:
    base = figures(ls)
    cols = [(name, figures(r, chained)) for name, r, chained in columns]
    kb = next((c.get("image_kb") for _, c in cols if c.get("image_kb")), base.get("image_kb") or 0)
    rows = (
        ("next", "next", "ms", False),
        ("image", f"image ({kb:.0f} KB)", "ms", False),
        ("submit", "submit (?next=1: submit + next)", "ms", False),
        ("cycle1", "per label, 1 annotator", "ms", False),
        ("load", f"per label under load ({args.annotators} annotators)", "ms", False),
        ("rate", f"labels/s under load ({args.annotators} annotators)", "/s", True),
        ("client", "load generator CPU per label (under load)", "ms", None),
        ("errors", "errors in these two phases (any answer not 2xx)", "n", None),
        (
            "db_cycle1",
            "+ PostgreSQL backends per label, 1 annotator (not in the above)",
            "ms",
            None,
        ),
        ("db_load", "+ PostgreSQL backends per label under load (not in the above)", "ms", None),
        ("import_ms", f"import, per uploaded 512x512 JPEG ({count} uploads)", "ms", False),
        ("import_s", f"import, {count} uploads of 512x512 in all", "s", False),
        ("db_import", "+ PostgreSQL backends per imported image (not in the above)", "ms", None),
    )

    def cell(value, unit: str) -> str:
        if value is None:
            return "-"
        if unit == "/s":
            return f"{value:.1f}"
        if unit == "s":
            return f"{value:.2f} s"
        if unit == "n":
            return str(value)
        return f"{value:.2f} ms"

    head = [
        "server CPU",
        ls_title(ls),
    ]
    head += [name for name, _ in cols]
    print()
    print(
        "Server CPU from /proc schedstat of each server's process tree; (xN) = Label Studio / labeler "
        "(for labels/s: labeler / Label Studio); higher is labeler's advantage."
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, title, unit, higher_better in rows:
        if base.get(key) is None and all(c.get(key) is None for _, c in cols):
            continue
        line = [title, cell(base.get(key), unit)]
        for _, c in cols:
            v, b = c.get(key), base.get(key)
            text = cell(v, unit)
            if v and b and higher_better is not None:
                ratio = v / b if higher_better else b / v
                text += f" (x{ratio:.1f})"
            line.append(text)
        print("| " + " | ".join(line) + " |")
    print(
        f"| plain store of the same bytes (write + fsync), per image | {floor_ms:.2f} ms (the floor, "
        "this process) |" + " |" * len(cols)
    )
    print()


# -- main ------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--images", type=int, default=2000, help="512x512 JPEGs to import (default 2000)"
    )
    ap.add_argument("--duration", type=float, default=20, help="seconds per phase (default 20)")
    ap.add_argument("--annotators", type=int, default=8, help="annotators at once under load (8)")
    ap.add_argument("--batch", type=int, default=50, help="files per upload request (default 50)")
    ap.add_argument(
        "--ls-venv",
        default="/tmp/labelstudio-venv",
        help="virtual environment for Label Studio (made with pip when missing; never .venv)",
    )
    ap.add_argument("--workers", type=int, default=4, help="labeler's gunicorn workers (4)")
    ap.add_argument("--threads", type=int, default=4, help="labeler's gunicorn threads (4)")
    ap.add_argument(
        "--pg",
        default=os.environ.get("LABELER_TEST_DATABASE_URL"),
        help="admin URL of a PostgreSQL server for labeler (a scratch database is made next to it)",
    )
    ap.add_argument("--only", choices=("ls", "labeler"), help="one tool only (a quick try)")
    ap.add_argument(
        "--tolerate-ls-5xx",
        action="store_true",
        help="Label Studio's own 5xx answers (on SQLite under load: 'database is locked') are "
        "counted and printed but do not make the exit status 1",
    )
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress lines as they come, also into a file
    if not 1 <= args.batch <= 100:  # Django's DATA_UPLOAD_MAX_NUMBER_FILES is 100 in Label Studio
        ap.error("--batch must be between 1 and 100")
    if Path(args.ls_venv).resolve() == (ROOT / ".venv").resolve():
        ap.error("--ls-venv must not be labeler's .venv")
    import logging

    logging.disable(logging.INFO)  # the CLI's and alembic's progress lines

    errors = 0
    with tempfile.TemporaryDirectory(prefix="bench-ls-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        images = make_images(tmp / "images", args.images)
        kb = statistics.fmean(p.stat().st_size for p in images) / 1024
        print(
            f"{len(images)} distinct 512x512 JPEGs, {kb:.1f} KB each on average "
            f"({time.perf_counter() - t0:.0f} s); {os.cpu_count()} CPUs, 1-min load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        floor = plain_store(images, tmp / "plain")
        floor_ms = 1000 * floor / len(images)
        print(f"plain store of the same bytes (write + fsync): {floor_ms:.2f} ms CPU per image")

        ls: dict = {}
        if args.only != "labeler":
            lsdir = tmp / "ls"
            lsdir.mkdir()
            ls = run_ls(args, images, lsdir)
            errors += ls["errors"]
            if ls.get("5xx"):
                print(
                    f"[ls] {ls['5xx']} of its errors were Label Studio's own 5xx answers (see above)"
                    + (", tolerated (--tolerate-ls-5xx)" if args.tolerate_ls_5xx else "")
                )
                if args.tolerate_ls_5xx:
                    errors -= ls["5xx"]
        columns: list[tuple[str, dict, bool]] = []
        if args.only != "ls":
            sq = tmp / "labeler-sqlite"
            sq.mkdir()
            r = run_labeler("labeler sqlite", f"sqlite:///{sq}/bench.db", args, images, sq)
            errors += r["errors"]
            columns += [("labeler SQLite", r, False), ("labeler SQLite ?next=1", r, True)]
        if args.only == "ls":
            pass
        elif args.pg:
            from sqlalchemy import text

            from labeler.db import make_engine

            name = f"labeler_bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            pgdir = tmp / "labeler-pg"
            pgdir.mkdir()
            try:
                url = args.pg.rsplit("/", 1)[0] + "/" + name
                meter = DbMeter(admin, name)
                r = run_labeler("labeler postgresql", url, args, images, pgdir, meter)
                errors += r["errors"]
                columns += [
                    ("labeler PostgreSQL", r, False),
                    ("labeler PostgreSQL ?next=1", r, True),
                ]
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            print("[labeler postgresql] skipped: pass --pg URL or set LABELER_TEST_DATABASE_URL")
        if ls:
            print(f"Label Studio server: {ls['server']}")
        if columns:
            print(f"labeler server: {columns[0][1].get('server', '?')}")
        print_table(ls, columns, floor_ms, len(images), args)
    if errors:
        print(f"FAILED: {errors} errors")
        sys.exit(1)


if __name__ == "__main__":
    main()
