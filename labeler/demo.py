"""Demo data: users of every role, a quality and a severity project of generated photographs.

The photographs come from labeler.demo_images (drawn from code, seeded; nothing downloaded), with
their case, body site and Fitzpatrick type in the import manifest. Three of the four demo raters
have labeled their queues like a plausible panel: mostly the image's truth, each with a habit
(one over-calls "blurry", one grades a step harsher), so the dashboards tell a readable story.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import click
import numpy as np
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from .allocation.models import QueueItem
from .allocation.services import allocate, current_allocation
from .auth.models import Role
from .auth.services import add_user, find_user_by_email
from .db import CommandSession
from .demo_images import DemoImage, manifest_csv, quality_specs, render, severity_specs
from .images.models import Image
from .images.services import import_images, read_manifest
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
    ("rater4@demo.test", "Dr. Rhea Rater", {Role.rater}),
]
RATERS = ("rater1@demo.test", "rater2@demo.test", "rater3@demo.test", "rater4@demo.test")


@dataclass(frozen=True)
class DemoProject:
    """One demo project: its protocol, its generated images and how the panel answers them."""

    name: str
    protocol: str
    specs: Callable[[int], list[DemoImage]]  # count -> the seeded generated images
    answer: Callable[[np.random.Generator, DemoImage, RaterStyle], dict]
    answer_seed: int


PROJECTS = (
    DemoProject(
        "Demo: image quality",
        "quality",
        lambda count: quality_specs(count, seed=7),
        lambda rng, spec, style: quality_answer(rng, spec, style),
        11,
    ),
    DemoProject(
        "Demo: acne severity",
        "severity",
        lambda count: severity_specs(count, seed=8),
        lambda rng, spec, style: severity_answer(rng, spec, style),
        12,
    ),
)
DEFAULT_IMAGES = 120
GOLDEN_SHARE = 0.25  # of each project's images, labeled by every rater


@dataclass(frozen=True)
class RaterStyle:
    """How a demo rater answers: mostly the truth, with one characteristic habit."""

    accuracy: float  # chance of the true class on an easy image
    blurry_bias: float = 0.0  # chance of calling a sharp photo "poor quality: blurry"
    harsher: float = 0.0  # chance of grading one step above what they would otherwise give
    habit: str = "steady"


# rater1 starts with nothing labeled (sign in as them to try labeling); the others answer like a
# plausible panel, so the dashboards have something to say.
PANEL = {
    "rater2@demo.test": RaterStyle(0.94, blurry_bias=0.06, habit="over-calls 'blurry'"),
    "rater3@demo.test": RaterStyle(0.93, harsher=0.65, habit="grades one step harsher"),
    "rater4@demo.test": RaterStyle(0.96),
}
# what a rater who misses the truth answers instead, per true class (weights)
CONFUSION = {
    "lesion": {"healthy_skin": 0.45, "poor_quality": 0.45, "no_skin": 0.1},
    "healthy_skin": {"lesion": 0.55, "poor_quality": 0.4, "no_skin": 0.05},
    "no_skin": {"poor_quality": 0.6, "healthy_skin": 0.4},
}
# a plausible wrong diagnosis of each drawn lesion
MISDIAGNOSIS = {"D22.9": "C43.9", "C43.9": "D22.9", "L40.0": "L30.9", "L82.1": "D22.9"}


@dataclass
class MemorySource:
    name: str
    data: bytes

    def read(self) -> bytes:
        return self.data


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
    raters = [users[e] for e in RATERS]
    for demo in PROJECTS:
        project = session.query(Project).filter_by(name=demo.name).one_or_none()
        if project is None:
            project = create_project(session, lead, demo.name, demo.protocol)
        for rater in raters:
            add_member(session, None, project, rater, MemberRole.rater)
        specs = demo.specs(count)
        summary = import_images(
            session,
            None,
            project,
            (MemorySource(s.filename, render(s)) for s in specs),
            storage=storage,
            source_label="demo (generated photographs)",
            manifest=read_manifest(manifest_csv(specs)),
            checkpoint=checkpoint,
        )
        lines.append(f"{project.name} (id {project.id}): {summary.line()}")
        if current_allocation(session, project) is None:
            allocate(
                session,
                users["admin@demo.test"],
                project,
                raters,
                golden_size=max(round(count * GOLDEN_SHARE), 1),
                overlap=2,
                seed=1,
            )
            by_name = {s.filename: s for s in specs}
            rng = np.random.default_rng(demo.answer_seed)
            labeled = prelabel(session, project, users, by_name, rng, demo.answer)
            lines.append(
                f"  allocated to {len(raters)} raters (overlap 2, golden set labeled by all); "
                f"{labeled} labels pre-filled by "
                + ", ".join(f"{e.split('@')[0]} ({PANEL[e].habit})" for e in PANEL)
                + "; rater1 starts fresh"
            )
        checkpoint()
    lines.append("demo users: " + ", ".join(e for e, _n, _r in DEMO_USERS))
    return lines


def prelabel(
    session: Session,
    project: Project,
    users: dict,
    specs: dict[str, DemoImage],
    rng: np.random.Generator,
    answer_of: Callable[[np.random.Generator, DemoImage, RaterStyle], dict],
) -> int:
    """Label the whole queue of each panel rater, answering from each image's truth in their style."""
    count = 0
    for email, style in PANEL.items():
        rater = users[email]
        items = session.scalars(
            select(QueueItem)
            .where(QueueItem.project_id == project.id, QueueItem.rater_id == rater.id)
            .order_by(QueueItem.position)
        ).all()
        for item in items:
            spec = specs[session.get(Image, item.image_id).filename]
            answer = answer_of(rng, spec, style)
            submit_label(
                session,
                rater,
                item,
                answer,
                base_version=None,
                submission_id=None,
                time_spent_ms=int(rng.lognormal(np.log(7000), 0.5)),
            )
            count += 1
    return count


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def quality_answer(rng: np.random.Generator, spec: DemoImage, style: RaterStyle) -> dict:
    """A panel rater's quality label of a generated image: mostly its truth, in the rater's style."""
    truth = spec.cls
    if truth in ("lesion", "healthy_skin") and rng.random() < style.blurry_bias:
        return {"decision": "poor_quality", "explanations": ["blurry"]}
    if rng.random() < style.accuracy - 0.15 * spec.difficulty:
        cls = truth
    elif truth == "poor_quality":  # looked past the flaw (or saw nothing relevant in it)
        covered = "lesion_covered" in spec.explanations
        cls = (
            "no_skin"
            if rng.random() < 0.15
            else ("lesion" if spec.lesion and not covered else "healthy_skin")
        )
    else:
        cls = _pick(rng, CONFUSION[truth])
    if cls == "lesion":
        code = spec.icd10 or "D22.9"
        if rng.random() < 0.2:
            code = MISDIAGNOSIS[code]
        return {"decision": "lesion", "icd10": code}
    if cls != "poor_quality":
        return {"decision": cls}
    if truth == "poor_quality":
        explanations = [e for e in spec.explanations if rng.random() < 0.92] or list(
            spec.explanations
        )
    else:
        explanations = [str(rng.choice(["blurry", "bad_light", "bad_framing"]))]
    if rng.random() < style.blurry_bias * 3 and "blurry" not in explanations:
        explanations.append("blurry")
    if rng.random() < 0.08:
        other = str(rng.choice(["bad_light", "low_resolution", "bad_framing"]))
        if other not in explanations:
            explanations.append(other)
    return {"decision": "poor_quality", "explanations": explanations}


def severity_answer(rng: np.random.Generator, spec: DemoImage, style: RaterStyle) -> dict:
    """A panel rater's grade: the true grade give or take a step, one step up for a harsh rater."""
    spread = 0.12 + 0.12 * spec.difficulty
    grade = spec.grade + int(rng.choice([-1, 0, 1], p=[spread, 1 - 2 * spread, spread]))
    if rng.random() < style.harsher:
        grade += 1
    return {"decision": "graded", "grade": int(np.clip(grade, 1, 5))}


@click.command("demo")
@click.option(
    "--images",
    "count",
    default=DEFAULT_IMAGES,
    show_default=True,
    help="Generated images per project.",
)
@with_appcontext
def demo_cmd(count: int) -> None:
    """Create demo users of every role and two demo projects with generated photographs, pre-labeled."""
    with CommandSession() as s:
        lines = build_demo(s, app_storage(), count, checkpoint=s.commit)
    for line in lines:
        click.echo(line)
