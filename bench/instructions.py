"""Instructions per label cycle, counted by Valgrind's cachegrind: the hot path's cost without the noise.

Run: .venv/bin/python bench/instructions.py [--cycles 100] [--images 400] [--pg URL] [--only DB]
(--pg defaults to LABELER_TEST_DATABASE_URL; a scratch database is created next to it and dropped.
Needs Valgrind: Debian's package valgrind.)

CPU milliseconds read from /proc (bench/labeling.py) are the figure the goals are set in, but on a
shared 2-core host the same commit measures 30-40% apart from one run to the next, so a change of a
few percent cannot be told from noise. The number of instructions a process executes moves less:
two runs of one commit alone on that host gave 8.42 and 8.55 M per SQLite cycle (2%), the floor
1.79 M both times. It is not exact: two runs at once on that host (eight children on two cores), of
two commits that differ by one read's column list, gave 7.5 M per SQLite cycle to the one doing more
work and 8.5 M to the other; so run it alone, repeat it, and trust only differences well past the
spread of the repeats. Not yet pinned down: which of the app's time-bound
work (a token's once-a-minute recheck, SQLite's WAL checkpoints, done by whichever process commits)
makes the rest of the spread. Here the app serves the label cycle in-process (the WSGI app called with a built
request, no HTTP server, no network), under ``valgrind --tool=cachegrind --cache-sim=no``:

    GET /api/v1/items/{id}/image    PUT /api/v1/items/{id}/label?next=1   (the submit answers with the next item)

A child process sets up nothing: it loads the app on a project set up beforehand (the CLI, as
bench/labeling.py does), labels WARMUP cycles, then ``--cycles`` more, as a rater of its own (every
rater is on every image, so each child labels a queue of its own); the same child with no measured
cycles is subtracted, so the app's start, imports and warm-up cancel out. The same pair without the
image requests splits the cycle into image and submit+next. bench/floor_app.py (Flask answering
the same calls with no work) is counted the same way: labeler's figures as a ratio to it.

What this does not count: the HTTP server (gunicorn), the kernel, the database server's own process
(PostgreSQL), and the effect of cold caches when requests interleave with other processes; bench/
labeling.py measures all of those. Instructions are not time: a cache miss costs many cycles; use this
to compare two commits, bench/labeling.py to say how fast a machine serves raters.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
WARMUP = 10


# -- the child: one process counted by cachegrind -------------------------------------------------------


def child(state_file: str, rater: int, cycles: int, with_image: bool) -> None:
    """Label WARMUP + ``cycles`` cycles in-process with the app described in ``state_file``, as its
    ``rater``-th rater (each child has its own queue: all raters are on every image)."""
    from labeling import ANSWERS
    from werkzeug.test import EnvironBuilder

    state = json.loads(Path(state_file).read_text())
    os.environ.update(state["env"])
    if state["app"] == "floor":
        from floor_app import app
    else:
        from labeler import create_app

        app = create_app()
    if state.get("cookie"):  # the labeling page's requests: a signed-in session and its CSRF token
        headers, cookie_name = (
            sign_in(app, state["emails"][rater]),
            app.config["SESSION_COOKIE_NAME"],
        )
    else:
        headers, cookie_name = {"Authorization": f"Bearer {state['tokens'][rater]}"}, None

    def call(method: str, path: str, body: dict | None = None) -> bytes:
        path, _, query = path.partition("?")
        environ = EnvironBuilder(
            path=path,
            query_string=query,
            method=method,
            headers=headers,
            json=body,
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        ).get_environ()
        status: list[str] = []
        sent: list = []
        answer = app(environ, lambda s, h, _e=None: (status.append(s), sent.extend(h)))
        data = b"".join(answer)
        getattr(answer, "close", lambda: None)()
        if not status[0].startswith("200"):
            raise SystemExit(f"{method} {path}: {status[0]} {data[:200]!r}")
        for name, value in sent:  # the session renewed (its idle stamp, once a minute): keep it
            if cookie_name and name == "Set-Cookie" and value.startswith(f"{cookie_name}="):
                headers["Cookie"] = value.split(";", 1)[0]
        return data

    item = json.loads(call("GET", f"/api/v1/projects/{state['project']}/queue/next"))["item"]

    def label(n: int) -> None:
        nonlocal item
        if with_image:
            call("GET", item["image_url"])
        body = {**ANSWERS[n % len(ANSWERS)], "base_version": 0, "submission_id": uuid.uuid4().hex}
        item = json.loads(call("PUT", f"/api/v1/items/{item['id']}/label?next=1", body))["next"]
        if item is None:
            raise SystemExit("the queue ran out: set up more images (--images)")

    for n in range(WARMUP):
        label(n)
    # a full collection now, in every child (the one with no cycles too): the warm-up built the
    # ICD-10 index (a quarter of a million objects), and whether the next full collection fell
    # among the measured cycles moved a child's count by a fifth
    gc.collect()
    for n in range(WARMUP, WARMUP + cycles):
        label(n)


def sign_in(app, email: str) -> dict[str, str]:
    """The headers of the labeling page's requests for ``email`` signed in through the development
    sign-in form (LABELER_AUTH=dev): the session cookie, the CSRF token its saves carry, JSON."""
    import re

    client = app.test_client()
    page = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
    csrf = page.search(client.get("/auth/login").get_data(as_text=True)).group(1)
    signed_in = client.post("/auth/dev-login", data={"email": email, "csrf_token": csrf})
    if signed_in.status_code != 302:
        raise SystemExit(f"bench: signing in as {email} failed ({signed_in.status_code})")
    csrf = page.search(client.get("/").get_data(as_text=True)).group(1)
    name = app.config["SESSION_COOKIE_NAME"]
    return {
        "Cookie": f"{name}={client.get_cookie(name).value}",
        "X-CSRFToken": csrf,
        "Accept": "application/json",
    }


# -- the parent: set up, count, print ------------------------------------------------------------------


def count(state_file: Path, rater: int, cycles: int, with_image: bool) -> int:
    """Instructions the child executed (all of its process)."""
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        str(state_file),
        str(rater),
        str(cycles),
        "1" if with_image else "0",
    ]
    # one hash seed for every child: with random ones, dictionaries and sets differ from process to
    # process, and so does the count
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"the counted process failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    for line in done.stderr.splitlines():
        if "I" in line and "refs:" in line:
            return int(line.rsplit(":", 1)[1].replace(",", "").strip())
    raise SystemExit(f"cachegrind gave no count (exit {done.returncode}):\n{done.stderr[-2000:]}")


def measure(state_file: Path, cycles: int) -> dict[str, float]:
    """Instructions per cycle, per image request and per submit+next. Four children, two at a time
    (each is one process on one core): with and without the image requests, each once with no
    measured cycles (its warm-up the same as the measured one's) and once with them."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(count, state_file, rater, n, with_image)
            for rater, (n, with_image) in enumerate(
                ((0, True), (cycles, True), (0, False), (cycles, False))
            )
        ]
        none, full, none_submit, submit_only = (run.result() for run in runs)
    cycle, submit = (full - none) / cycles, (submit_only - none_submit) / cycles
    return {"cycle": cycle, "image": cycle - submit, "submit+next": submit}


def show(label: str, figures: dict[str, float], cycles: int) -> None:
    print(
        f"[{label}] instructions per call ({cycles} cycles, less the same process with none): "
        f"image {figures['image'] / 1e6:.2f} M, submit+next {figures['submit+next'] / 1e6:.2f} M, "
        f"cycle {figures['cycle'] / 1e6:.2f} M"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=100, help="measured label cycles (default 100)")
    ap.add_argument("--images", type=int, default=400, help="images in the project (default 400)")
    ap.add_argument("--pg", default=os.environ.get("LABELER_TEST_DATABASE_URL"))
    ap.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    ap.add_argument(
        "--cookie",
        action="store_true",
        help="the raters are the labeling page's: a signed-in session cookie (and CSRF token on the "
        "save) instead of an API token",
    )
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        state_file, rater, cycles, with_image = args.child
        child(state_file, int(rater), int(cycles), with_image == "1")
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind is not installed (Debian: apt-get install valgrind)")
    if args.images <= args.cycles + WARMUP:  # each child labels its own queue of every image
        raise SystemExit(f"bench: --images must be more than {args.cycles + WARMUP}")
    import logging

    from labeling import rater_email, server_env, setup_project

    from tests.helpers import empty_pg_database  # the tests' scratch database

    logging.disable(logging.INFO)  # the CLI's and alembic's progress lines

    databases = [("sqlite", None)] if args.only != "postgresql" else []
    if args.only != "sqlite":
        if args.pg:
            databases.append(("postgresql", args.pg))
        elif args.only == "postgresql":
            raise SystemExit("bench: --only postgresql needs --pg or LABELER_TEST_DATABASE_URL")
        else:
            print("[postgresql] skipped: no --pg URL and no LABELER_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp_dir:
        tmp = Path(tmp_dir)
        ours: dict[str, dict[str, float]] = {}
        image = None
        for name, admin_url in databases:
            work = tmp / name
            (work / "instance").mkdir(parents=True)
            with (
                empty_pg_database(admin_url, "labeler_bench")
                if admin_url
                else nullcontext(f"sqlite:///{work}/bench.db")
            ) as url:
                env = server_env(url, work / "instance")
                print(f"[{name}] setting up {args.images} images, 4 raters (all on every image)")
                project_id, tokens = setup_project(env, args.images, 4, work)
                state = work / "state.json"
                state.write_text(
                    json.dumps(
                        {
                            "app": "labeler",
                            "env": env,
                            "project": project_id,
                            "tokens": tokens,
                            "emails": [rater_email(i) for i in range(len(tokens))],
                            "cookie": args.cookie,
                        }
                    )
                )
                ours[name] = measure(state, args.cycles)
                show(name, ours[name], args.cycles)
                image = image or str(min((work / "src").glob("*.jpg")))
        floor_state = tmp / "floor.json"
        floor_state.write_text(
            json.dumps(
                {
                    "app": "floor",
                    "env": {"BENCH_FLOOR_IMAGE": image},
                    "project": 1,
                    "tokens": ["-"] * 4,
                }
            )
        )
        floor = measure(floor_state, args.cycles)
        show("floor", floor, args.cycles)
        for name, figures in ours.items():
            print(
                f"[{name}] a label cycle executes {figures['cycle'] / floor['cycle']:.1f} x the floor's "
                f"instructions ({(figures['cycle'] - floor['cycle']) / 1e6:.2f} M of labeler's own work)"
            )


if __name__ == "__main__":
    main()
