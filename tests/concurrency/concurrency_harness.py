"""Shared by the concurrency tests: image rows without files, a seeded project with API tokens, and the
HTTP scenario (submitters, rebalances, double submits, connection kills) with the checks that must hold
when it ends."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from helpers import image_row
from sqlalchemy import func, select, text

from labeler.allocation import services
from labeler.allocation.models import GoldenImage, ItemStatus, QueueItem
from labeler.auth.models import Role, User
from labeler.auth.services import add_user, create_token
from labeler.db import Database, make_engine
from labeler.images.models import Image
from labeler.labeling.models import Label, LabelRevision
from labeler.projects.services import create_project

ANSWERS = (
    {"decision": "healthy_skin"},
    {"decision": "lesion", "icd10": "L70.0"},
    {"decision": "no_skin"},
    {"decision": "poor_quality", "explanations": ["blurry"]},
)


@dataclass
class World:
    project_id: int
    lead_token: str
    submitters: dict[str, str]  # e-mail -> raw API token; never removed
    floaters: dict[str, str]  # added and removed over and over while they label


def seed_world(
    database: Database, *, images: int, submitters: int, floaters: int, golden: int
) -> World:
    """A quality project allocated at overlap 1 to ``submitters`` raters; ``floaters`` more raters wait."""
    with database.session_factory() as s:
        lead = add_user(s, None, "lead@load.test", "Lead", {Role.lead})
        raters = [
            add_user(s, None, f"r{i:02d}@load.test", f"R{i}", {Role.rater})
            for i in range(submitters + floaters)
        ]
        project = create_project(s, lead, "load", "quality")
        s.add_all(image_row(project.id) for _ in range(images))
        s.flush()
        services.allocate(
            s, lead, project, raters[:submitters], golden_size=golden, overlap=1, seed=2026
        )

        def token(user: User) -> str:
            return create_token(s, user, user, "load")[1]

        world = World(
            project.id,
            token(lead),
            {r.email: token(r) for r in raters[:submitters]},
            {r.email: token(r) for r in raters[submitters:]},
        )
        s.commit()
    return world


@dataclass
class Tally:
    requests: int = 0
    labels: int = 0  # acknowledged (200) first submissions
    double_submits: int = 0
    rebalances: int = 0
    kills: int = 0
    seconds: float = 0.0
    server_errors: int = 0  # 5xx
    moved: int = 0  # 404 to a floater after its removal (expected)
    unexpected: list[str] = field(default_factory=list)
    acks: list[tuple[str, str]] = field(default_factory=list)  # (rater e-mail, submission id)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, resp: requests.Response | Exception, what: str, ok: set[int]) -> bool:
        with self.lock:
            self.requests += 1
            if isinstance(resp, Exception):
                self.unexpected.append(f"{what}: no answer ({resp.__class__.__name__}: {resp})")
                return False
            if resp.status_code >= 500:
                self.server_errors += 1
            if resp.status_code not in ok:
                self.unexpected.append(f"{what}: {resp.status_code} {resp.text[:200]}")
                return False
            return True

    def line(self) -> str:
        return (
            f"requests {self.requests}, labels {self.labels}, double submits {self.double_submits}, "
            f"rebalances {self.rebalances}, kills {self.kills}, 5xx {self.server_errors}, "
            f"{self.seconds:.1f} s, "
            f"404 to removed raters {self.moved}, unexpected {len(self.unexpected)}"
        )


def _http(token: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


class Gate:
    """Lets requests through, except while a kill runs: ``quiet()`` holds new requests back and waits
    for those in flight, so a kill hits only connections resting in the server's pools (what the pool
    must survive), never one in the middle of a request (whose transaction would fail by nature)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.inflight = 0
        self.closed = False

    def call(self, *args, **kw) -> requests.Response | Exception:
        with self.cond:
            while self.closed:
                self.cond.wait()
            self.inflight += 1
        try:
            return _call(*args, **kw)
        finally:
            with self.cond:
                self.inflight -= 1
                self.cond.notify_all()

    def quiet(self, action: Callable[[], int]) -> int:
        with self.cond:
            self.closed = True
            while self.inflight:
                self.cond.wait()
        try:
            return action()
        finally:
            with self.cond:
                self.closed = False
                self.cond.notify_all()


def _call(http: requests.Session, method: str, url: str, **kw) -> requests.Response | Exception:
    """The answer, or the exception of a request that got none (counted as unexpected)."""
    try:
        return http.request(method, url, timeout=60, **kw)
    except requests.RequestException as exc:
        return exc


def run_scenario(
    base: str,
    world: World,
    *,
    rebalances: int,
    max_duration: float,
    kill: Callable[[], int] | None = None,
    kill_every: float = 1.5,
    rebalance_pause: float = 0.4,
    double_every: int = 4,
) -> Tally:
    """Every rater labels (next -> PUT) while the lead adds and removes the floaters ``rebalances``
    times in all (or until ``max_duration``); every ``double_every``-th first submission is sent twice
    at once on two connections; ``kill()`` drops the server's idle database connections every
    ``kill_every`` seconds. Counted in work, not time: a loaded machine runs longer, not less."""
    tally = Tally()
    gate = Gate()
    end = time.monotonic() + max_duration
    done = threading.Event()

    def running() -> bool:
        return not done.is_set() and time.monotonic() < end

    floating = {email: False for email in world.floaters}  # currently a rater of the project?
    state_lock = threading.Lock()
    api = f"{base}/api/v1"

    def submit(
        http: requests.Session, item_id: str, body: dict, email: str, floater: bool
    ) -> requests.Response | Exception:
        ok = {200, 404} if floater else {200}
        resp = gate.call(http, "PUT", f"{api}/items/{item_id}/label", json=body)
        if tally.count(resp, f"PUT label ({email})", ok) and resp.status_code == 200:
            with tally.lock:
                tally.acks.append((email, body["submission_id"]))
        elif not isinstance(resp, Exception) and resp.status_code == 404:
            with tally.lock:
                tally.moved += 1
        return resp

    def rater(email: str, token: str, floater: bool) -> None:
        http, twin = _http(token), _http(token)
        n = 0
        try:
            while running():
                resp = gate.call(http, "GET", f"{api}/projects/{world.project_id}/queue/next")
                ok = {200, 404} if floater else {200}
                if not tally.count(resp, f"GET next ({email})", ok):
                    continue
                if resp.status_code == 404:  # a floater between removal and its next addition
                    with tally.lock:
                        tally.moved += 1
                    time.sleep(0.05)
                    continue
                item = resp.json()["item"]
                if item is None:  # done for now; a rebalance may bring more
                    time.sleep(0.05)
                    continue
                n += 1
                body = dict(
                    ANSWERS[n % len(ANSWERS)],
                    base_version=0,
                    submission_id=uuid.uuid4().hex,
                    time_spent_ms=700,
                )
                if n % double_every:
                    r = submit(http, item["id"], body, email, floater)
                    if not isinstance(r, Exception) and r.status_code == 200:
                        with tally.lock:
                            tally.labels += 1
                    continue
                answers: list = [None, None]

                def second(answers=answers, item=item, body=body) -> None:
                    answers[1] = submit(twin, item["id"], body, email, floater)

                t = threading.Thread(target=second)
                t.start()
                answers[0] = submit(http, item["id"], body, email, floater)
                t.join(90)
                codes = [
                    None if isinstance(a, Exception | None) else a.status_code for a in answers
                ]
                with tally.lock:
                    tally.double_submits += 1
                    if codes == [200, 200]:
                        tally.labels += 1
                        versions = {a.json()["version"] for a in answers}
                        if versions != {1}:
                            tally.unexpected.append(f"double submit versions {versions}")
                    elif not (floater and set(codes) <= {200, 404}):  # removed meanwhile
                        tally.unexpected.append(f"double submit answered {codes}")
        finally:
            http.close()
            twin.close()

    def rebalancer() -> None:
        http = _http(world.lead_token)
        url = f"{api}/projects/{world.project_id}/allocation/raters"
        try:
            while running() and tally.rebalances < rebalances:
                for email in world.floaters:
                    with state_lock:
                        present = floating[email]
                    if present:
                        resp = gate.call(http, "POST", url + "/remove", json={"email": email})
                        ok = tally.count(resp, f"remove {email}", {200})
                    else:
                        resp = gate.call(http, "POST", url, json={"email": email})
                        ok = tally.count(resp, f"add {email}", {201})
                    if ok:
                        with state_lock:
                            floating[email] = not present
                        with tally.lock:
                            tally.rebalances += 1
                    time.sleep(rebalance_pause)
        finally:
            http.close()
            done.set()

    def killer() -> None:
        while not done.wait(kill_every) and time.monotonic() < end:
            killed = gate.quiet(kill)
            with tally.lock:
                tally.kills += killed

    threads = [
        threading.Thread(target=rater, args=(email, token, False))
        for email, token in world.submitters.items()
    ]
    threads += [
        threading.Thread(target=rater, args=(email, token, True))
        for email, token in world.floaters.items()
    ]
    threads.append(threading.Thread(target=rebalancer))
    if kill is not None:
        threads.append(threading.Thread(target=killer))
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_duration + 120)
    tally.seconds = time.monotonic() - started
    return tally


def idle_connection_killer(admin_url: str, database_name: str) -> Callable[[], int]:
    """``kill()``: pg_terminate_backend on the database's idle connections (the app's pools), as a
    server restart, a failover or an idle timeout would; run it through ``Gate.quiet``."""
    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")

    def kill() -> int:
        with engine.connect() as conn:
            pids = [
                pid
                for pid, killed in conn.execute(
                    text(
                        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid() AND state = 'idle'"
                    ),
                    {"name": database_name},
                )
                if killed
            ]
            # pg_terminate_backend only signals: wait until those backends have exited, as after a
            # restart or failover, so that the pools hold connections the server has closed
            deadline = time.monotonic() + 10
            while (
                pids
                and conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": pids},
                ).scalar()
            ):
                assert time.monotonic() < deadline, "terminated backends did not exit in 10 s"
                time.sleep(0.01)
            return len(pids)

    kill.engine = engine  # type: ignore[attr-defined]  (disposed by the caller)
    return kill


def check_outcome(database: Database, world: World, tally: Tally) -> dict[str, int]:
    """The end state: every acknowledged label kept, one label per (rater, image) and per fold image at
    overlap 1, every labeled item done, every fold image held by exactly one rater."""
    assert tally.server_errors == 0, tally.unexpected[:10]
    assert not tally.unexpected, tally.unexpected[:10]
    with database.session_factory() as s:
        per_pair = Counter(s.execute(select(Label.rater_id, Label.image_id)).all())
        assert max(per_pair.values(), default=1) == 1
        golden = set(s.scalars(select(GoldenImage.image_id)))
        per_fold_image = Counter(image for (_r, image) in per_pair if image not in golden)
        assert max(per_fold_image.values(), default=1) == 1, "a fold image labeled twice"
        items = {
            (it.rater_id, it.image_id): it.status
            for it in s.execute(select(QueueItem.rater_id, QueueItem.image_id, QueueItem.status))
        }
        missing = [pair for pair in per_pair if pair not in items]
        assert not missing, f"labels without their queue item: {missing[:5]}"
        not_done = [pair for pair in per_pair if items[pair] is not ItemStatus.done]
        assert not not_done, f"labeled items not done: {not_done[:5]}"
        holders = Counter(image for (_r, image) in items if image not in golden)
        images = s.scalar(select(func.count(Image.id)))
        assert len(holders) == images - len(golden) and set(holders.values()) == {1}
        emails = dict(s.execute(select(User.id, User.email)).all())
        recorded = {
            (emails[rater_id], sub)
            for rater_id, sub in s.execute(
                select(Label.rater_id, LabelRevision.submission_id).join(
                    Label, Label.id == LabelRevision.label_id
                )
            )
        }
        lost = [ack for ack in tally.acks if ack not in recorded]
        assert not lost, f"acknowledged labels lost: {lost[:5]}"
        return {"labels_stored": sum(per_pair.values()), "items": len(items)}
