"""Demo data: users of every role, a quality and a severity project with generated skin-like images."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import click
import numpy as np
from flask.cli import with_appcontext
from PIL import Image as PILImage
from PIL import ImageFilter
from sqlalchemy import select
from sqlalchemy.orm import Session

from .allocation.models import QueueItem
from .allocation.services import allocate, current_allocation
from .auth.models import Role
from .auth.services import add_user, find_user_by_email
from .db import CommandSession
from .images.models import Image
from .images.services import import_images
from .images.storage import Storage, app_storage
from .labeling.services import submit_label
from .projects.models import MemberRole, Project
from .projects.services import add_member, create_project

DEMO_USERS = [
    ("admin@demo.test", "Ada Admin", {Role.admin}),
    ("lead@demo.test", "Lena Lead", {Role.lead}),
    ("rater1@demo.test", "Dr. Rosa Rater", {Role.rater}),
    ("rater2@demo.test", "Dr. Ravi Rater", {Role.rater}),
    ("rater3@demo.test", "Dr. Rui Rater", {Role.rater}),
]
SKIN_TONES = [
    (241, 194, 167),
    (224, 172, 138),
    (198, 134, 100),
    (161, 102, 69),
    (117, 72, 45),
    (84, 52, 36),
]


@dataclass
class MemorySource:
    name: str
    data: bytes

    def read(self) -> bytes:
        return self.data


def skin_image(
    rng: np.random.Generator,
    size: tuple[int, int] = (640, 480),
    lesions: int = 3,
    blur: float = 0.0,
    darken: float = 1.0,
) -> bytes:
    """A photograph-like skin patch: tone, texture, pores and a few reddish lesions."""
    w, h = size
    tone = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = (
        0.85 + 0.15 * np.sin(xx / w * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))[..., None]
    )
    img = tone * shade + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    for _ in range(lesions):
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        r = rng.uniform(0.02, 0.08) * min(w, h)
        mask = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
        img = img * (1 - 0.6 * mask) + np.array([180, 60, 60], np.float32) * 0.6 * mask
    img = np.clip(img * darken, 0, 255).astype(np.uint8)
    pil = PILImage.fromarray(img, "RGB")
    if blur:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=88)
    return buf.getvalue()


def build_demo(
    session: Session, storage: Storage, count: int, *, checkpoint: Callable[[], None]
) -> list[str]:
    """Create (idempotently) the demo users and projects; returns lines to print."""
    lines = []
    users = {}
    for email, name, roles in DEMO_USERS:
        user = find_user_by_email(session, email) or add_user(session, None, email, name, roles)
        users[email] = user
    lead = users["lead@demo.test"]
    for seed, (name, protocol) in enumerate(
        (("Demo: image quality", "quality"), ("Demo: acne severity", "severity"))
    ):
        rng = np.random.default_rng(
            7 + seed
        )  # per project, so a rerun regenerates the same (duplicate) images
        project = session.query(Project).filter_by(name=name).one_or_none()
        if project is None:
            project = create_project(session, lead, name, protocol)
        for email in ("rater1@demo.test", "rater2@demo.test", "rater3@demo.test"):
            add_member(session, None, project, users[email], MemberRole.rater)
        sources = []
        for i in range(count):
            kind = i % 4
            data = skin_image(
                rng,
                lesions=0 if kind == 1 else int(rng.integers(1, 5)),
                blur=4.0 if kind == 3 else 0.0,
                darken=0.35 if kind == 2 else 1.0,
            )
            sources.append(MemorySource(f"demo_{protocol}_{i:03d}.jpg", data))
        summary = import_images(
            session,
            None,
            project,
            sources,
            storage=storage,
            source_label="demo",
            checkpoint=checkpoint,
        )
        lines.append(f"{project.name} (id {project.id}): {summary.line()}")
        if current_allocation(session, project) is None:
            raters = [
                users[e] for e in ("rater1@demo.test", "rater2@demo.test", "rater3@demo.test")
            ]
            allocate(
                session,
                users["admin@demo.test"],
                project,
                raters,
                golden_size=max(count // 6, 1),
                overlap=2,
                seed=1,
            )
            labeled = _prelabel(session, project, raters[1:], rng)
            lines.append(
                f"  allocated to 3 raters (overlap 2); {labeled} labels pre-filled by rater2 and rater3 "
                "so the dashboards have data; rater1 starts fresh"
            )
        checkpoint()
    lines.append("demo users: " + ", ".join(e for e, _n, _r in DEMO_USERS))
    return lines


def _prelabel(session: Session, project: Project, raters: list, rng: np.random.Generator) -> int:
    """Label the whole queue of some demo raters with plausible, partly disagreeing answers."""
    count = 0
    for rater in raters:
        items = session.scalars(
            select(QueueItem).where(
                QueueItem.project_id == project.id, QueueItem.rater_id == rater.id
            )
        ).all()
        for item in items:
            image = session.get(Image, item.image_id)
            index = int(
                image.filename.rsplit("_", 1)[-1].split(".")[0]
            )  # demo_<protocol>_<index>.jpg
            submit_label(
                session,
                rater,
                item,
                _demo_answer(project, index, rng),
                base_version=None,
                submission_id=None,
                time_spent_ms=int(rng.integers(2000, 20000)),
            )
            count += 1
    return count


def _demo_answer(project: Project, index: int, rng: np.random.Generator) -> dict:
    kind = index % 4  # how the demo image was drawn: lesions, healthy skin, dark, blurry
    if project.protocol.value == "severity":
        return {
            "decision": "graded",
            "grade": int(np.clip(1 + index % 5 + rng.integers(-1, 2), 1, 5)),
        }
    if (
        rng.random() < 0.35
    ):  # raters disagree now and then, so the agreement figures are not trivially perfect
        kind = int(rng.integers(0, 4))
    if kind == 0:
        return {
            "decision": "lesion",
            "icd10": str(rng.choice(["L70.0", "L20.9", "L40.0", "D22.9"])),
        }
    if kind == 1:
        return {"decision": "healthy_skin"}
    return {"decision": "poor_quality", "explanations": ["bad_light"] if kind == 2 else ["blurry"]}


@click.command("demo")
@click.option(
    "--images", "count", default=24, show_default=True, help="Generated images per project."
)
@with_appcontext
def demo_cmd(count: int) -> None:
    """Create demo users of every role and two demo projects with generated skin-like images."""
    with CommandSession() as s:
        lines = build_demo(s, app_storage(), count, checkpoint=s.commit)
    for line in lines:
        click.echo(line)
