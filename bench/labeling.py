"""Benchmark the labeling loop over HTTP: gunicorn serving the app, simulated raters, SQLite then PostgreSQL.

Run: .venv/bin/python bench/labeling.py [--duration 30] [--raters 16] [--images N] [--pg URL] [--only DB]
[--submit-next] [--cookie] [--think-ms MS [--think-fixed]] [--no-floor] [--workers 4] [--threads 4] [--worker-class gthread|sync] [--max-requests N]
(--pg defaults to LABELER_TEST_DATABASE_URL, whose database is only the admin connection: a scratch
database is created next to it and dropped; without it only SQLite runs.)

For each database: a project of generated small JPEGs is set up through the CLI (db upgrade, projects
create, images import, users add, users token, allocate with every rater on every image), then
``gunicorn wsgi:app`` serves it on 127.0.0.1 (4 workers x 4 threads by default). One rater, then
``--raters`` raters at once (separate processes, one requests.Session and bearer token each), loop
next -> image -> submit for ``--duration`` seconds:

    GET /api/v1/projects/{id}/queue/next   GET /api/v1/items/{id}/image   PUT /api/v1/items/{id}/label

With --submit-next the submit answers with the next item (PUT .../label?next=1): two requests per label.
With --cookie the raters are the labeling page's users: signed in through the development form, their
requests carry the session cookie and the save a CSRF header, as the browser's do (the floor app's
phases stay as they are: it checks nothing).
With --think-ms each rater pauses that long on average after each label (a person looking at the
image; exponentially distributed, and the raters start spread over one pause): latency under a given
load rather than at saturation. --think-fixed makes every pause exactly that long with every rater
starting together, so all submits arrive at once every cycle (a burst: the worst case, not a load
people make). Without --think-ms the raters form a closed loop with no pause, which saturates a 2-core
machine, so that p95 is mostly queueing.

Printed per phase: p50/p95 of each call, p95 of submit + the following next (what a rater waits for
between images), labels/s and errors; server CPU per label cycle, read from /proc for gunicorn's
process tree (per-thread schedstat: user + system time in nanoseconds, robust on a shared machine where
wall times are not), split per call kind in the one-rater phase, and the load generator's own CPU per
cycle. Goals: submit+next p95 < 25 ms with 16 raters on PostgreSQL; server CPU per cycle <= 3 ms on
PostgreSQL, <= 2.5 ms on SQLite.

Then the floor (skip with --no-floor): the same phases against bench/floor_app.py, a Flask app under
the same gunicorn settings that answers the same calls with no work (no database, no sign-in), and
labeler's server CPU per cycle as a ratio to it; and the same calls answered by a plain WSGI
callable (floor_app.bare), which splits that floor into gunicorn's own share and Flask's. CPU speed
differs between machines (the same commit measured 5.5 and 11 ms per cycle on two hosts of this kind);
the ratio and the difference to the floor travel better than the milliseconds.
Any error (a non-2xx answer, a wrong body, a failed connection) makes the exit status 1.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # requests go here only
ANSWERS = (  # valid quality-protocol bodies, cycled
    {"decision": "healthy_skin"},
    {"decision": "lesion", "icd10": "L70.0"},
    {"decision": "no_skin"},
    {"decision": "poor_quality", "explanations": ["blurry", "bad_light"]},
    {"decision": "lesion", "icd10_missing_text": "naevus, atypical"},
)
WARMUP_LOOPS = 3


def proc_cpu(pids: list[int]) -> float:
    """Seconds of CPU the processes (all their threads) have used so far; gone ones count 0.

    Read from /proc/PID/task/TID/schedstat (nanoseconds on CPU, user and system), not /proc/PID/stat:
    that one counts in 10 ms ticks, too coarse to split one rater's CPU among calls of a few ms.
    """
    if not os.path.exists("/proc/self/schedstat"):  # a kernel without it: no figure, not a zero
        raise SystemExit("bench: /proc/PID/schedstat is missing on this machine; no CPU figures")
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as fh:
                    total += int(fh.read().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def process_tree(root: int) -> list[int]:
    """The process and all its descendants (gunicorn's master and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu(pids: list[int]) -> float:
    """Seconds of CPU gunicorn's tree (``pids``, from process_tree: the master first) has used so far:
    its live processes' threads, plus its workers that exited and were reaped (the master's cutime and
    cstime, in clock ticks), so that a worker replaced during a phase (--max-requests) neither takes
    its CPU away with it nor leaves the phase's figure below zero. ``pids`` is read again, in place,
    when one of them is gone (its replacement is then counted too)."""
    if any(not os.path.exists(f"/proc/{pid}") for pid in pids):
        pids[:] = process_tree(pids[0])
    try:
        with open(f"/proc/{pids[0]}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):  # the master itself is gone: the phase failed anyway
        reaped = 0.0
    return proc_cpu(pids) + reaped


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# -- simulated rater (runs in its own process; imports nothing of the app) ---------------------------


def rater_loop(
    base: str,
    project_id: int,
    token: str,
    duration: float,
    barrier,
    results,
    server_pids=None,
    submit_next: bool = False,
    think_s: float = 0.0,
    think_fixed: bool = False,
    email: str | None = None,
) -> None:
    """Label items until ``duration`` seconds after the barrier; put latencies (ms) and errors on ``results``.

    ``think_s``: the rater's mean pause per label, drawn from an exponential distribution (people do not
    look at every image for the same time), the first one before the first timed label so the raters
    do not start in step; ``think_fixed``: exactly ``think_s`` each time, every rater released by the
    barrier at once, so all of them send their submits together, every cycle (a burst, the worst case).

    With ``server_pids`` (the one-rater phase: the server does nothing else) the server's CPU is read
    from /proc before and after each call and added to that call's kind, so each kind gets its share.

    ``email``: the rater is the labeling page's, not a script: signed in through the development form,
    every request carries the session cookie (renewed as the server sends it) and the save its CSRF
    header, instead of the token.
    """
    import re

    import requests

    http = requests.Session()
    if email is None:
        http.headers["Authorization"] = f"Bearer {token}"
    else:
        page = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
        csrf = page.search(http.get(base + "/auth/login", timeout=10).text).group(1)
        form = {"email": email, "csrf_token": csrf}
        signed_in = http.post(
            base + "/auth/dev-login", data=form, allow_redirects=False, timeout=10
        )
        if signed_in.status_code != 302:
            raise SystemExit(f"bench: signing in as {email} failed ({signed_in.status_code})")
        csrf = page.search(http.get(base + "/", timeout=10).text).group(1)
        http.headers.update({"X-CSRFToken": csrf, "Accept": "application/json"})
    out = {
        "next": [],
        "image": [],
        "submit": [],
        "submit_next": [],
        "labels": 0,
        "errors": 0,
        "samples": [],
        "exhausted": False,
        "cpu": {"next": 0.0, "image": 0.0, "submit": 0.0},
        "client_cpu": 0.0,
    }
    kind_of = {"GET queue": "next", "GET image": "image", "PUT": "submit"}

    recording = [False]
    chained: dict = {}  # submit_next: the item the last submit answered with

    def fail(what: str) -> None:
        out["errors"] += 1
        if len(out["samples"]) < 5:
            out["samples"].append(what)

    def call(method: str, path: str, **kw):
        kind = kind_of[
            "PUT" if method == "PUT" else ("GET queue" if "/queue/" in path else "GET image")
        ]
        c0 = tree_cpu(server_pids) if server_pids else 0.0
        t0 = time.perf_counter()
        try:
            resp = http.request(method, base + path, timeout=10, **kw)
            if resp is not None:
                resp.content  # noqa: B018  (the whole body read before the server's CPU is read)
        except requests.RequestException as exc:
            fail(f"{method} {path}: {exc.__class__.__name__}: {exc}")
            return None, (time.perf_counter() - t0) * 1000
        ms = (time.perf_counter() - t0) * 1000
        if server_pids and recording[0]:
            out["cpu"][kind] += tree_cpu(server_pids) - c0
        if resp.status_code != 200:
            fail(f"{method} {path}: {resp.status_code} {resp.text[:200]}")
            return None, ms
        return resp, ms

    def one_loop(record: bool, after_submit_ms: float | None) -> float | None | bool:
        """next -> image -> submit; returns the submit's ms (None after an error, False when the queue is done).

        Chained (submit_next): the submit answers with the next item (PUT ...?next=1), so a GET next is
        sent only for the first item; the submit's own time is then what a rater waits between images.
        """
        item = chained.pop("item", None)
        if item is None:
            resp, ms = call("GET", f"/api/v1/projects/{project_id}/queue/next")
            if resp is None:
                return None
            if record:
                out["next"].append(ms)
                if after_submit_ms is not None:
                    out["submit_next"].append(after_submit_ms + ms)
            item = resp.json().get("item")
            if item is None:
                return False
        resp, ms = call("GET", item["image_url"])
        if resp is None:
            return None
        if not resp.headers.get("Content-Type", "").startswith("image/") or not resp.content:
            fail(f"GET {item['image_url']}: not an image ({resp.headers.get('Content-Type')})")
            return None
        if record:
            out["image"].append(ms)
        body = dict(
            ANSWERS[(item["position"] + len(out["submit"])) % len(ANSWERS)],
            base_version=0,
            submission_id=uuid.uuid4().hex,
            time_spent_ms=1500,
        )
        suffix = "?next=1" if submit_next else ""
        resp, ms = call("PUT", f"/api/v1/items/{item['id']}/label{suffix}", json=body)
        if resp is None:
            return None
        answer = resp.json()
        if answer.get("version") != 1 or (submit_next and "next" not in answer):
            fail(f"PUT label of {item['id']}: unexpected answer {resp.text[:200]}")
            return None
        if record:
            out["submit"].append(ms)
            out["labels"] += 1
            if submit_next:
                out["submit_next"].append(ms)
        if submit_next:
            if answer["next"] is None:
                return False
            chained["item"] = answer["next"]
        return ms

    try:
        for _ in range(WARMUP_LOOPS):  # connections and caches, not timed
            one_loop(False, None)
        rng = random.Random(token)  # a rater's own pauses, the same in every run

        def pause() -> float:
            return think_s if think_fixed else rng.expovariate(1 / think_s)

        barrier.wait(timeout=120)
        if think_s and not think_fixed:
            time.sleep(rng.uniform(0, think_s))  # arrivals spread out from the start
        recording[0] = True
        end = time.perf_counter() + duration
        cpu0 = time.process_time()
        last = None
        while time.perf_counter() < end:
            last = one_loop(True, last)
            if last is False:
                out["exhausted"] = True
                break
            if think_s:  # looking at the next image before answering (not timed)
                time.sleep(pause())
                last = None  # the wait is the rater's, not part of submit + next
        out["client_cpu"] = time.process_time() - cpu0
    finally:
        http.close()
        results.put(out)


# -- setup through the CLI ----------------------------------------------------------------------------


def make_jpegs(folder: Path, count: int) -> None:
    """Small distinct JPEGs (a colour field with noise; every file has a different hash)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    for i in range(count):
        base = rng.integers(90, 220, size=3)
        pixels = np.clip(base + rng.normal(0, 12, size=(96, 128, 3)), 0, 255).astype("uint8")
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=85)
        (folder / f"img{i:05d}.jpg").write_bytes(buf.getvalue())


def server_env(url: str, instance: Path) -> dict[str, str]:
    return {
        "LABELER_DATABASE_URL": url,
        "LABELER_INSTANCE_PATH": str(instance),
        "LABELER_AUTH": "dev",
        "LABELER_SECRET_KEY": secrets.token_hex(16),
        "LABELER_ENV": "development",
        "LABELER_DOTENV": str(instance / "no.env"),
        # no background jobs competing with the measured loop: tiles are for zooming, not this cycle
        "LABELER_TILES_AT_IMPORT": "false",
        "LABELER_JOBS_LOCAL": "off",
        "LABELER_ML_SPAWN_WORKER": "false",
    }


@contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ with ``env`` on top for the block (the app reads its settings from it), then as before."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def rater_email(i: int) -> str:
    """The ``i``-th bench rater's account (setup_project makes them)."""
    return f"rater{i:02d}@bench.test"


def setup_project(
    env: dict[str, str], images: int, n_raters: int, tmp: Path
) -> tuple[int, list[str]]:
    """db upgrade, projects create, images import, users add + token, allocate: the CLI, in this process."""
    from labeler import create_app

    with environ(env):
        app = create_app()
        runner = app.test_cli_runner()

        def cli(*args: str) -> str:
            result = runner.invoke(args=list(args))
            if result.exit_code != 0:
                raise SystemExit(
                    f"labeler {' '.join(args)} failed: {result.output}{result.exception or ''}"
                )
            return result.stdout  # the token command writes its expiry to stderr

        cli("db", "upgrade")
        project_id = int(
            cli("projects", "create", "bench-labeling", "--protocol", "quality").split()[-1]
        )
        make_jpegs(tmp / "src", images)
        t0 = time.perf_counter()
        print(
            "  "
            + cli("images", "import", str(project_id), str(tmp / "src")).strip().splitlines()[-1]
            + f" ({time.perf_counter() - t0:.1f} s)"
        )
        emails = [rater_email(i) for i in range(n_raters)]
        tokens = []
        for email in emails:
            cli("users", "add", email, "--name", email.split("@")[0], "--role", "rater")
            tokens.append(cli("users", "token", email, "--name", "bench").strip().splitlines()[-1])
        out = cli(
            "allocate",
            str(project_id),
            "--raters",
            ",".join(emails),
            "--golden-size",
            str(images // 20),
            "--overlap",
            str(n_raters),
            "--seed",
            "2024",
        )
        print("  " + out.splitlines()[0])
        app.extensions["labeler_db"].engine.dispose()
        return project_id, tokens


def statement_table(label: str, env: dict[str, str], project_id: int, token: str) -> None:
    """SQL statements per call of one cycle, counted in-process (the app on the same database, a
    before_cursor_execute listener on its engine): the bearer-token lookup included. PostgreSQL: also
    the round trips, each statement plus the BEGIN, COMMIT and ROLLBACK psycopg actually sends (none
    on a connection in autocommit, nor to end a transaction it never began)."""
    from sqlalchemy import event

    from labeler import create_app

    with environ(env):
        app = create_app()
    engine = app.extensions["labeler_db"].engine
    postgresql = engine.dialect.name == "postgresql"
    seen: list[str] = []
    control: list[str] = []  # PostgreSQL: BEGIN / COMMIT / ROLLBACK sent

    def statement(conn, _cursor, sql, *_args):
        seen.append(sql)
        driver = conn.connection.driver_connection
        if postgresql and not driver.autocommit and driver.info.transaction_status.name == "IDLE":
            control.append("BEGIN")  # psycopg sends it before the statement

    def end(name: str):
        def ended(conn):
            if (
                postgresql
                and conn.connection.driver_connection.info.transaction_status.name != "IDLE"
            ):
                control.append(name)

        return ended

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", end("COMMIT"))
    event.listen(engine, "rollback", end("ROLLBACK"))
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    client.get("/api/v1/icd10?q=acne", headers=headers)  # the token's once-a-minute last-use stamp
    counts, trips = {}, {}

    def count(name: str, method: str, url: str, **kw):
        seen.clear()
        control.clear()
        resp = client.open(url, method=method, headers=headers, **kw)
        if resp.status_code != 200:
            raise SystemExit(
                f"{method} {url}: {resp.status_code} {resp.get_data(as_text=True)[:200]}"
            )
        resp.close()
        counts[name] = len(seen)
        trips[name] = len(seen) + len(control)
        return resp

    item = count("next", "GET", f"/api/v1/projects/{project_id}/queue/next").json["item"]
    count("image", "GET", item["image_url"])
    body = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
    nxt = count("submit+next", "PUT", f"/api/v1/items/{item['id']}/label?next=1", json=body)
    item = nxt.json["next"]
    count("image", "GET", item["image_url"])
    body = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
    count("submit", "PUT", f"/api/v1/items/{item['id']}/label", json=body)
    engine.dispose()
    print(
        f"[{label}] SQL statements per call (bearer lookup included; first showing stamped): "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    if postgresql:
        print(
            f"[{label}] round trips per call (statements + BEGIN/COMMIT/ROLLBACK sent): "
            + ", ".join(f"{k} {v}" for k, v in trips.items())
        )


# -- server and phases --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(
    env: dict[str, str],
    port: int,
    workers: int,
    threads: int,
    log: Path,
    worker_class: str = "gthread",
    max_requests: int = 0,
    app_spec: str = "wsgi:app",
) -> subprocess.Popen:
    """gunicorn serving ``app_spec`` (labeler's wsgi:app, or the floor app from bench/)."""
    cmd = [sys.executable, "-m", "gunicorn"]
    if app_spec != "wsgi:app":  # the floor app lives in bench/ (kept off labeler's own path)
        cmd += ["--pythonpath", str(ROOT / "bench")]
    cmd += [
        app_spec,
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        worker_class,
        "--log-level",
        "warning",
        "--timeout",
        "60",
        # the raters stand in for nginx, whose upstream connections stay open while idle; with pauses
        # (--think-ms, exponential) some outlast gunicorn's 2 s default, and a request sent just as
        # gunicorn closes such a connection is reset (nginx retries it; requests does not)
        "--keep-alive",
        "75",
    ]
    if max_requests:  # a worker is replaced after about this many requests (jitter: 10%)
        cmd += [
            "--max-requests",
            str(max_requests),
            "--max-requests-jitter",
            str(max_requests // 10),
        ]
    return subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def wait_ready(
    base: str, server: subprocess.Popen, timeout: float = 60, workers: int | None = None
) -> None:
    """The server answers, then every worker has booted and it is idle (wait_quiet)."""
    import requests

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode}")
        try:
            if requests.get(base + "/auth/login", timeout=5).status_code == 200:
                break
        except requests.RequestException:  # workers still starting
            time.sleep(0.2)
    else:
        raise SystemExit("gunicorn did not answer within 60 s")
    wait_quiet(server, workers)


def wait_quiet(server: subprocess.Popen, workers: int | None = None, timeout: float = 120) -> None:
    """Wait until every gunicorn worker has booted and the server is idle.

    The first answer comes from the first worker ready; the others may still be importing the app
    (about 2.5 s of CPU each for labeler), and that CPU would be charged to the first phase: it made
    one rater's server CPU per label look twice what it is (2.5 s spread over 200 labels is 12 ms each).
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pids = process_tree(server.pid)
        before = proc_cpu(pids)
        time.sleep(0.5)
        booted = workers is None or len(pids) >= workers + 1
        if booted and proc_cpu(pids) - before < 0.01:  # under 2% of a core over half a second
            return
    raise SystemExit(f"gunicorn did not settle within {timeout:g} s")


def run_processes(
    target: Callable[..., None],
    args_for: Callable[[str, Any, Any], tuple],
    tokens: list[str],
    measure: Callable[[], Any],
    *,
    timeout: float,
    result_timeout: float,
) -> tuple[list[dict], Any, Any]:
    """One simulated rater per token, each in its own process running ``target(*args_for(token,
    barrier, results))``; they start together at a barrier and each puts one dict on ``results``.

    Returns those dicts and what ``measure()`` read just after the barrier and just after the last
    result (server CPU, a database meter, a clock). Processes are spawned: they import only what
    ``target``'s module needs (requests), not the app or the parent's connections.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(tokens) + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=args_for(token, barrier, results), daemon=True)
        for token in tokens
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=timeout)
    before = measure()
    outs = [results.get(timeout=result_timeout) for _ in procs]
    after = measure()
    for p in procs:
        p.join(timeout=10)
    return outs, before, after


def run_phase(
    base: str,
    project_id: int,
    tokens: list[str],
    duration: float,
    server_pid: int,
    submit_next: bool = False,
    think_s: float = 0.0,
    think_fixed: bool = False,
    emails: dict[str, str] | None = None,
) -> dict:
    """Run one simulated rater per token at once (``emails``: as the labeling page's signed-in users); merged latencies, counts and CPU seconds (from /proc:
    the server's process tree over the phase, the raters' own, and per call kind with one rater)."""
    server_pids = process_tree(server_pid)
    per_call = server_pids if len(tokens) == 1 else None
    outs, cpu0, cpu1 = run_processes(
        rater_loop,
        lambda token, barrier, results: (
            base,
            project_id,
            token,
            duration,
            barrier,
            results,
            per_call,
            submit_next,
            think_s,
            think_fixed,
            emails[token] if emails else None,
        ),
        tokens,
        lambda: tree_cpu(server_pids),
        timeout=120,
        result_timeout=duration + 120,
    )
    server_cpu = cpu1 - cpu0
    merged = {
        k: [v for o in outs for v in o[k]]
        for k in ("next", "image", "submit", "submit_next", "samples")
    }
    merged.update(
        labels=sum(o["labels"] for o in outs),
        errors=sum(o["errors"] for o in outs),
        exhausted=sum(o["exhausted"] for o in outs),
        duration=duration,
        server_cpu=server_cpu,
        client_cpu=sum(o["client_cpu"] for o in outs),
        cpu={k: sum(o["cpu"][k] for o in outs) for k in ("next", "image", "submit")},
    )
    return merged


def report(label: str, n: int, r: dict) -> float:
    """Print one phase's figures; returns its server CPU per cycle in ms."""

    def fmt(ms: list[float]) -> str:
        return f"p50 {statistics.median(ms) if ms else float('nan'):6.2f} ms  p95 {pct(ms, 0.95):6.2f} ms"

    print(
        f"[{label}] {n:2d} rater(s): {r['labels'] / r['duration']:7.1f} labels/s ({r['labels']} labels), "
        f"errors {r['errors']}" + (f", {r['exhausted']} queue(s) ran out" if r["exhausted"] else "")
    )
    for name in ("next", "image", "submit"):
        print(f"[{label}]     {name:<11} {fmt(r[name])}  (n={len(r[name])})")
    goal = "  (goal p95 < 25 ms at 16 raters on PostgreSQL)" if n > 1 else ""
    print(f"[{label}]     submit+next {fmt(r['submit_next'])}{goal}")
    labels = max(1, r["labels"])
    split = ""
    if n == 1:
        split = (
            "  ("
            + ", ".join(
                f"{k} {1000 * r['cpu'][k] / max(1, len(r[k])):.2f}"
                for k in ("next", "image", "submit")
            )
            + " ms each)"
        )
    goal = " (goal <= 3 ms PostgreSQL, <= 2.5 ms SQLite)"
    print(
        f"[{label}]     server CPU per cycle (next+image+submit) {1000 * r['server_cpu'] / labels:.2f} ms"
        f"{goal}{split}; load generator CPU per cycle {1000 * r['client_cpu'] / labels:.2f} ms"
    )
    for sample in r["samples"]:
        print(f"[{label}]     error: {sample}")
    return 1000 * r["server_cpu"] / labels


def run(label: str, url: str, args: argparse.Namespace) -> int:
    n_raters = (
        args.raters + 1
    )  # one more for the single-rater phase, so both phases start on fresh queues
    with tempfile.TemporaryDirectory(prefix="labeler-bench-") as tmp:
        tmp_path = Path(tmp)
        env = server_env(url, tmp_path / "instance")
        print(f"[{label}] setting up {args.images} images, {n_raters} raters (all on every image)")
        project_id, tokens = setup_project(env, args.images, n_raters, tmp_path)
        statement_table(label, env, project_id, tokens[0])
        port = free_port()
        base = f"http://{HOST}:{port}"
        log = tmp_path / "gunicorn.log"
        server = start_server(
            env, port, args.workers, args.threads, log, args.worker_class, args.max_requests
        )
        errors = 0
        per_cycle: list[float] = []
        try:
            wait_ready(base, server, workers=args.workers)
            print(
                f"[{label}] gunicorn wsgi:app on {base}, {args.worker_class}, {args.workers} workers x "
                f"{args.threads} threads"
                + (f", --max-requests {args.max_requests}" if args.max_requests else "")
                + ", "
                f"{args.duration:g} s per phase"
                + (", the submit answers with the next item" if args.submit_next else "")
                + (", raters signed in with the session cookie" if args.cookie else "")
            )
            emails = {t: rater_email(i) for i, t in enumerate(tokens)} if args.cookie else None
            per_cycle, errors = both_phases(label, base, server, project_id, tokens, args, emails)
        finally:
            stop_server(label, server, log, errors)
        if args.floor and not errors:
            errors += floor_phases(label, args, tmp_path, project_id, tokens, per_cycle)
    return errors


def both_phases(
    label: str,
    base: str,
    server: subprocess.Popen,
    project_id: int,
    tokens: list[str],
    args: argparse.Namespace,
    emails: dict[str, str] | None = None,
) -> tuple[list[float], int]:
    """One rater, then the others at once: each phase's server CPU per cycle (ms), and the errors
    (``emails``: the raters sign in as the labeling page's users)."""
    per_cycle, errors = [], 0
    for tokens_now in ([tokens[0]], tokens[1:]):
        result = run_phase(
            base,
            project_id,
            tokens_now,
            args.duration,
            server.pid,
            args.submit_next,
            args.think_ms / 1000,
            args.think_fixed,
            emails,
        )
        per_cycle.append(report(label, len(tokens_now), result))
        errors += result["errors"]
    return per_cycle, errors


def stop_server(label: str, server: subprocess.Popen, log: Path, errors: int) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if errors or server.returncode not in (0, -15):
        print(
            f"[{label}] gunicorn log (last lines):\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        )


def floor_phases(
    label: str,
    args: argparse.Namespace,
    tmp_path: Path,
    project_id: int,
    tokens: list[str],
    labeler_per_cycle: list[float],
) -> int:
    """The same phases against bench/floor_app.py (gunicorn, werkzeug and Flask doing no work), right
    after labeler's on the same machine, and labeler's server CPU per cycle as a ratio to it; then
    against its bare WSGI callable (gunicorn alone), which splits the floor into gunicorn's and
    Flask's shares."""
    image = min((tmp_path / "src").glob("*.jpg"))
    floors: dict[str, list[float]] = {}
    for spec, name, what in (
        ("floor_app:app", f"{label} floor", "bench/floor_app.py (no database, no sign-in)"),
        (
            "floor_app:bare",
            f"{label} bare floor",
            "floor_app.bare (plain WSGI: no Flask, no werkzeug)",
        ),
    ):
        port = free_port()
        base = f"http://{HOST}:{port}"
        log = tmp_path / f"gunicorn-{spec.replace(':', '-')}.log"
        server = start_server(
            {"BENCH_FLOOR_IMAGE": str(image)},
            port,
            args.workers,
            args.threads,
            log,
            args.worker_class,
            args.max_requests,
            app_spec=spec,
        )
        failed = 0
        try:
            wait_ready(base, server, workers=args.workers)
            print(f"[{name}] {what}, same server settings")
            floors[spec], failed = both_phases(name, base, server, project_id, tokens, args)
        finally:
            stop_server(name, server, log, failed)
        if failed:
            return failed
    flask, bare = floors["floor_app:app"], floors["floor_app:bare"]
    for n, ours, base_ms, bare_ms in zip(
        (1, len(tokens) - 1), labeler_per_cycle, flask, bare, strict=False
    ):
        print(
            f"[{label}] {n:2d} rater(s): server CPU per cycle {ours:.2f} ms = {ours / base_ms:.2f} x the "
            f"floor's {base_ms:.2f} ms ({ours - base_ms:.2f} ms of labeler's own work); of the floor, "
            f"gunicorn alone {bare_ms:.2f} ms, Flask and werkzeug {base_ms - bare_ms:.2f} ms"
        )
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30, help="seconds per phase (default 30)")
    ap.add_argument(
        "--raters", type=int, default=16, help="concurrent raters in the second phase (default 16)"
    )
    ap.add_argument(
        "--images",
        type=int,
        default=None,
        help="images in the project, every rater gets all of them (default: 120 per second of --duration)",
    )
    ap.add_argument(
        "--submit-next",
        action="store_true",
        help="the submit answers with the next item (PUT .../label?next=1): two requests per label",
    )
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0,
        help="each rater pauses this long on average after each label, as a person looks at the next "
        "image (exponentially distributed, first pause before the first label; default 0: as fast as "
        "the server answers, a closed loop that saturates a small machine)",
    )
    ap.add_argument(
        "--think-fixed",
        action="store_true",
        help="every pause exactly --think-ms and every rater starting together: all submits arrive "
        "at once, every cycle (a burst, the worst case)",
    )
    ap.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the floor phases (bench/floor_app.py: the same calls answered with no work)",
    )
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--worker-class", default="gthread", choices=("gthread", "sync"))
    ap.add_argument(
        "--max-requests", type=int, default=0, help="gunicorn --max-requests (jitter 10%%)"
    )
    ap.add_argument(
        "--pg",
        default=os.environ.get("LABELER_TEST_DATABASE_URL"),
        help="admin URL of a PostgreSQL server (a scratch database is created next to it)",
    )
    ap.add_argument("--only", choices=("sqlite", "postgresql"), help="run one database only")
    ap.add_argument(
        "--cookie",
        action="store_true",
        help="the raters are the labeling page's: signed in, with the session cookie (and the CSRF "
        "header on the save) instead of an API token (the floor app needs neither)",
    )
    args = ap.parse_args()
    args.images = args.images or max(200, int(args.duration * 120))  # one rater labels < 100/s here
    sys.path.insert(0, str(ROOT))
    import logging

    logging.disable(logging.INFO)  # the CLI's and alembic's progress lines

    errors = 0
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            errors += run("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.only == "sqlite":
        pass
    elif not args.pg:
        print("[postgresql] skipped: pass --pg URL or set LABELER_TEST_DATABASE_URL")
    else:
        from tests.helpers import empty_pg_database  # the tests' scratch database

        with empty_pg_database(args.pg, "labeler_bench") as url:
            errors += run("postgresql", url, args)
    if errors:
        print(f"FAILED: {errors} errors")
        sys.exit(1)


if __name__ == "__main__":
    main()
