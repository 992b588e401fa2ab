"""Capacity on paper: how many concurrent raters one app-server core and one PostgreSQL core carry.

Run: .venv/bin/python bench/capacity.py [--pg URL] [--raters 6] [--duration 20] [--pace 10] [--write-readme]
(--pg defaults to LABELER_TEST_DATABASE_URL, used only as the admin connection: a scratch database is
created next to it and dropped.)

A project of small JPEGs is set up through the CLI (bench/labeling.py's setup), gunicorn serves it on
loopback, and ``--raters`` simulated raters loop next -> image -> submit for ``--duration`` seconds.
Measured per label cycle (the three calls):
- app-server CPU: user + system seconds of gunicorn's master and workers (/proc), over the phase;
- PostgreSQL CPU: user + system seconds of the PostgreSQL backends connected to the scratch database
  (their pids from pg_stat_activity, CPU from /proc: the database server must run on this machine);
- database time: pg_stat_statements' total execution time when the extension is loaded
  (shared_preload_libraries), else PostgreSQL's own count of time spent running statements in this
  database (pg_stat_database.active_time, PostgreSQL 14+);
- bytes of image sent per cycle (what the storage must deliver).
Capacity at a labeling pace of one label per ``--pace`` seconds per rater: a core spends
``CPU per cycle / pace`` of itself on one rater, so it carries ``pace / CPU per cycle`` raters.
``--write-readme`` replaces the table between the capacity markers in README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import textwrap
import time
import uuid
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

# bench/labeling.py: the same setup and simulated raters
from labeling import (
    WARMUP_LOOPS,
    free_port,
    proc_cpu,
    process_tree,
    run_phase,
    server_env,
    setup_project,
    start_server,
    wait_ready,
)

START, END = "<!-- capacity:start -->", "<!-- capacity:end -->"


def backend_pids(conn, name: str) -> list[int]:
    from sqlalchemy import text

    rows = conn.execute(
        text("SELECT pid FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"),
        {"n": name},
    )
    return [r[0] for r in rows]


def db_time_ms(conn, name: str) -> tuple[str, float]:
    """(source, ms) of statement time so far in database ``name``."""
    from sqlalchemy import text

    try:
        total = conn.execute(
            text(
                "SELECT coalesce(sum(s.total_exec_time), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = :n"
            ),
            {"n": name},
        ).scalar_one()
        return "pg_stat_statements", float(total)
    except Exception:  # noqa: BLE001  (not installed or not preloaded: the fallback below)
        conn.rollback()
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))
    total = conn.execute(
        text("SELECT active_time FROM pg_stat_database WHERE datname = :n"), {"n": name}
    ).scalar_one()
    return "pg_stat_database.active_time", float(total or 0)


def measure(args: argparse.Namespace) -> dict:
    from sqlalchemy import text

    from labeler.db import make_engine

    name = f"labeler_capacity_{uuid.uuid4().hex[:8]}"
    admin = make_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory(prefix="labeler-capacity-") as tmp:
            tmp_path = Path(tmp)
            env = server_env(url, tmp_path / "instance")
            print(f"setting up {args.images} images, {args.raters} raters (all on every image)")
            project_id, tokens = setup_project(env, args.images, args.raters, tmp_path)
            image_bytes = sum(p.stat().st_size for p in (tmp_path / "src").glob("*.jpg"))
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            log = tmp_path / "gunicorn.log"
            server = start_server(env, port, args.workers, args.threads, log)
            try:
                wait_ready(base, server)
                with admin.connect() as conn:
                    before = {p: proc_cpu([p]) for p in backend_pids(conn, name)}
                    source, db0 = db_time_ms(conn, name)
                    t0 = time.monotonic()
                    result = run_phase(base, project_id, tokens, args.duration, server.pid)
                    wall = time.monotonic() - t0
                    time.sleep(1.5)  # PostgreSQL 15 publishes a backend's counters within a second
                    # a backend alive at both ends counts its difference, a new one all it used (one
                    # that ended during the phase is lost: gunicorn's pool keeps its connections)
                    cpu_pg = sum(
                        proc_cpu([p]) - before.get(p, 0.0) for p in backend_pids(conn, name)
                    )
                    source, db1 = db_time_ms(conn, name)
                server_pids = process_tree(server.pid)
            finally:
                server.terminate()
                server.wait(timeout=30)
            if result["errors"]:
                raise SystemExit(f"{result['errors']} errors: {result['samples']}")
            # run_phase measures the app after its warm-up loops, the database over all of them
            cycles_app = max(1, result["labels"])
            cycles_all = cycles_app + WARMUP_LOOPS * len(tokens)
            return {
                "raters": len(tokens),
                "duration": result["duration"],
                "wall": wall,
                "labels": result["labels"],
                "labels_per_s": result["labels"] / result["duration"],
                "app_cpu_ms": 1000 * result["server_cpu"] / cycles_app,
                "pg_cpu_ms": 1000 * cpu_pg / cycles_all,
                "db_time_ms": (db1 - db0) / cycles_all,
                "db_source": source,
                "image_kb": image_bytes / args.images / 1024,
                "workers": args.workers,
                "threads": args.threads,
                "server_processes": len(server_pids),
                "submit_next_p95": _p95(result["submit_next"]),
            }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))] if values else float("nan")


def table(fig: dict, pace: float) -> str:
    per_app = pace * 1000 / fig["app_cpu_ms"]
    per_pg = pace * 1000 / fig["pg_cpu_ms"]
    intro = (
        f"Measured by `bench/capacity.py` on {date.today():%Y-%m-%d}: {fig['raters']} simulated "
        f"raters labeling as fast as they can for {fig['duration']:g} s against one gunicorn "
        f"({fig['workers']} workers x {fig['threads']} threads) and PostgreSQL on the same "
        f"2-core machine ({fig['labels']} label cycles, {fig['labels_per_s']:.0f} per second; "
        f"submit + next p95 {fig['submit_next_p95']:.0f} ms). A label cycle is one `next`, "
        f"one image ({fig['image_kb']:.0f} KB here) and one `submit`. Assumed pace: one label "
        f"per {pace:g} s per rater."
    )
    app_row = (
        f"| app-server CPU (gunicorn, all processes) | {fig['app_cpu_ms']:.1f} ms "
        f"| **{per_app:.0f}** per app core |"
    )
    pg_row = (
        f"| PostgreSQL CPU (its backends for this database) | {fig['pg_cpu_ms']:.1f} ms "
        f"| **{per_pg:.0f}** per PostgreSQL core |"
    )
    db_row = f"| database statement time ({fig['db_source']}) | {fig['db_time_ms']:.1f} ms | |"
    header = "| Per label cycle | Measured | Concurrent raters per core |\n|---|---|---|"
    intro = textwrap.fill(intro, 100, break_on_hyphens=False, break_long_words=False)
    return f"{intro}\n\n{header}\n{app_row}\n{pg_row}\n{db_row}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("LABELER_TEST_DATABASE_URL"))
    ap.add_argument("--raters", type=int, default=6)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--pace", type=float, default=10, help="seconds per label per rater (10)")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    if not args.pg:
        raise SystemExit("give --pg URL or set LABELER_TEST_DATABASE_URL (PostgreSQL only)")
    args.images = args.images or max(200, int(args.duration * 40))
    import logging

    logging.disable(logging.INFO)
    fig = measure(args)
    text = table(fig, args.pace)
    print(text)
    if args.write_readme:
        readme = ROOT / "README.md"
        body = readme.read_text()
        if START not in body or END not in body:
            raise SystemExit(f"README.md has no {START} ... {END} markers")
        body = re.sub(
            re.escape(START) + ".*?" + re.escape(END),
            lambda _m: f"{START}\n{text}{END}",
            body,
            flags=re.DOTALL,
        )
        readme.write_text(body)
        print("README.md updated")


if __name__ == "__main__":
    main()
