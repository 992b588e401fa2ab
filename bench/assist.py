"""What pre-labeling costs a rater's requests: SQL statements and in-process time per call.

    python bench/assist.py [--images 200] [--calls 200]

Builds a scratch SQLite database (a quality project, one rater, a golden set, a stored suggestion
per image as a finished job leaves them), then counts the statements of GET /items/{id}/label and
PUT /items/{id}/label (bearer token, counted with a before_cursor_execute listener on the app's
engine) and times the GET in-process (p50 / p95 over --calls), with pre-labeling off and on.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, select

from labeler import create_app
from labeler.allocation import services as allocation
from labeler.allocation.models import QueueItem
from labeler.assist.models import JobStatus, Suggestion, SuggestionJob
from labeler.auth.models import Role
from labeler.auth.services import add_user, create_token
from labeler.images.models import Image
from labeler.images.storage import content_key
from labeler.migrate import upgrade
from labeler.projects.models import MemberRole, Project
from labeler.projects.services import add_member, create_project

MODEL = "quality-20261130T000000-bench1"


def build(app, n_images: int) -> tuple[int, str, list[str]]:
    factory = app.extensions["labeler_db"].session_factory
    with factory() as s:
        lead = add_user(s, None, "lead@bench.test", "Lead", {Role.lead})
        rater = add_user(s, None, "rater@bench.test", "Rater", {Role.rater})
        s.flush()
        project = create_project(s, lead, f"bench-{uuid.uuid4().hex[:6]}", "quality")
        add_member(s, None, project, rater, MemberRole.rater)
        for _ in range(n_images):
            sha = secrets.token_hex(32)
            s.add(
                Image(
                    project_id=project.id,
                    sha256=sha,
                    filename=f"{sha[:8]}.jpg",
                    width=8,
                    height=8,
                    format="JPEG",
                    byte_size=1,
                    display_key=content_key("display", sha, "jpg"),
                    thumb_key=content_key("thumbs", sha, "jpg"),
                    original_key=content_key("originals", sha, "jpg"),
                )
            )
        s.flush()
        allocation.allocate(
            s, lead, project, [rater], golden_size=n_images // 10, overlap=1, seed=1
        )
        for image_id in s.scalars(select(Image.id).where(Image.project_id == project.id)):
            answer = {"class": "poor_quality", "probability": 0.9, "issues": []}
            s.add(
                Suggestion(image_id=image_id, model_id=MODEL, project_id=project.id, answer=answer)
            )
        s.add(SuggestionJob(project_id=project.id, model_id=MODEL, status=JobStatus.succeeded))
        raw = create_token(s, rater, rater, "bench", expires_in_days=None)[1]
        items = list(
            s.scalars(
                select(QueueItem.public_id)
                .where(QueueItem.rater_id == rater.id)
                .order_by(QueueItem.position)
            )
        )
        s.commit()
        return project.id, raw, items


def set_prelabel(app, project_id: int, model: str | None) -> None:
    with app.extensions["labeler_db"].session_factory() as s:
        project = s.get(Project, project_id)
        project.settings = {**(project.settings or {}), "suggestions_model_id": model}
        s.commit()


def measure(app, label: str, token: str, items: list[str], calls: int) -> None:
    engine = app.extensions["labeler_db"].engine
    seen: list[str] = []
    listener = lambda *a: seen.append(a[2])
    event.listen(engine, "before_cursor_execute", listener)
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}
    client.get("/api/v1/icd10?q=acne", headers=headers)  # the token's last-use stamp, once
    get_id, put_id = items[0], items[1]
    client.get(f"/api/v1/items/{get_id}/label", headers=headers)  # first showing stamped
    seen.clear()
    resp = client.get(f"/api/v1/items/{get_id}/label", headers=headers)
    n_get, has = len(seen), resp.json["suggestion"] is not None
    client.get(f"/api/v1/items/{put_id}/label", headers=headers)
    seen.clear()
    body = {"decision": "no_skin", "base_version": 0, "submission_id": uuid.uuid4().hex}
    resp = client.put(f"/api/v1/items/{put_id}/label", headers=headers, json=body)
    n_put, assisted = len(seen), resp.json["assisted"]
    event.remove(engine, "before_cursor_execute", listener)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        client.get(f"/api/v1/items/{get_id}/label", headers=headers).close()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(
        f"[{label}] GET label: {n_get} statements (suggestion {'shown' if has else 'none'}), "
        f"p50 {statistics.median(times):.2f} ms, p95 {p95:.2f} ms over {calls}; "
        f"PUT label: {n_put} statements (assisted={assisted})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        app = create_app(
            {
                "LABELER_ENV": "test",
                "SECRET_KEY": "bench-" + uuid.uuid4().hex,
                "DATABASE_URL": url,
                "INSTANCE_PATH": f"{tmp}/instance",
                "STORAGE_PATH": f"{tmp}/files",
                "AUTH_MODE": "dev",
                "JOBS_LOCAL": "inline",
            }
        )
        project_id, token, items = build(app, args.images)
        measure(app, "pre-labeling off", token, items, args.calls)
        set_prelabel(app, project_id, MODEL)
        measure(app, "pre-labeling on", token, items[2:], args.calls)
        app.extensions["labeler_db"].engine.dispose()


if __name__ == "__main__":
    main()
