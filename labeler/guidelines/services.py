"""Guidelines and reference images: read, write (leads), render safely. Services flush, never commit.

Markdown is rendered by markdown-it-py with raw HTML disabled (a `<script>` in the text is shown as
text) and its default link check (no `javascript:`, `vbscript:`, `file:` or non-image `data:` links).
Reference images go through the import pipeline's hostile-file checks (`process_image`) and keep
only its EXIF-free display copy and thumbnail, under keys of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import protocols
from ..audit.services import record_event
from ..auth.models import User
from ..db import utcnow
from ..errors import Conflict, NotFound, ValidationError
from ..images.processing import DEFAULT_LIMITS, ImageLimits, ImageRejected, process_image
from ..images.storage import Storage, content_key
from ..projects.models import Project
from ..protocols import form_spec
from ..validation import clean_text
from .models import Guideline, ReferenceImage

MAX_BODY = 50_000  # characters of Markdown
MAX_DEFINITION = 2_000
MAX_CAPTION = 500
MAX_IMAGES_PER_TARGET = 12
GENERAL = "general"

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(text: str | None) -> str:
    """HTML for guideline Markdown: raw HTML is escaped, unsafe link schemes are dropped."""
    return _markdown.render(text or "")


@dataclass(frozen=True)
class Target:
    key: str  # "general", "grade:3", "decision:no_skin", "explanation:blurry"
    label: str  # in the rater's words


def targets(project: Project) -> list[Target]:
    """What a definition or a reference image can be attached to in this project, in page order."""
    protocol = protocols.get(project.protocol)
    spec = form_spec(protocol, project.settings)
    out = [Target(GENERAL, "The whole guideline")]
    out += [Target(key, label) for key, label in protocol.guideline_targets(spec)]
    return out


def grade_key(value: Any) -> str:
    """A grade as written in a target key: 3.0 -> "3", 2.5 -> "2.5"."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _target(project: Project, key: Any) -> Target:
    found = {t.key: t for t in targets(project)}.get(key if isinstance(key, str) else "")
    if found is None:
        raise ValidationError(
            "choose what the image illustrates: the whole guideline, or one of this project's "
            "answers (a grade, a decision or a poor-quality reason)",
            field="target",
        )
    return found


def get_guideline(session: Session, project: Project) -> Guideline | None:
    return session.scalar(select(Guideline).where(Guideline.project_id == project.id))


def reference_images(session: Session, project: Project) -> list[ReferenceImage]:
    return list(
        session.scalars(
            select(ReferenceImage)
            .where(ReferenceImage.project_id == project.id)
            .order_by(ReferenceImage.target, ReferenceImage.id)
        )
    )


def save_guideline(
    session: Session,
    actor: User,
    project: Project,
    body: Any,
    definitions: Any,
    *,
    base_version: Any = None,
) -> Guideline:
    """Write the project's guideline text and per-answer definitions (audited).

    `base_version` (the version the editor started from, 0 for none) refuses a save over another
    lead's newer text with 409 instead of losing it silently.
    """
    text = clean_text(body, "the guideline text", max_len=MAX_BODY, collapse=False, field="body")
    if definitions is None:
        definitions = {}
    if not isinstance(definitions, Mapping):
        raise ValidationError(
            "'definitions' must map an answer to its written definition", field="definitions"
        )
    clean_defs: dict[str, str] = {}
    for key, value in definitions.items():
        target = _target(project, key)
        cleaned = clean_text(
            value,
            f"the definition of '{target.label}'",
            max_len=MAX_DEFINITION,
            collapse=False,
            field="definitions",
        )
        if cleaned:
            clean_defs[target.key] = cleaned
    guideline = session.scalar(
        select(Guideline).where(Guideline.project_id == project.id).with_for_update()
    )
    current = guideline.version if guideline else 0
    if base_version is not None and (
        isinstance(base_version, bool)
        or not isinstance(base_version, int)
        or base_version != current
    ):
        raise Conflict(
            "another lead changed the guidelines meanwhile; reload the page to see their version "
            "before saving yours",
            current_version=current,
        )
    before = {"body": guideline.body, "definitions": guideline.definitions} if guideline else None
    if guideline is None:
        guideline = Guideline(project_id=project.id, version=0, body="", definitions={})
        session.add(guideline)
    guideline.body = text or ""
    guideline.definitions = clean_defs
    guideline.version = current + 1
    guideline.updated_by_id = actor.id
    guideline.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor,
        "guidelines.update",
        "guideline",
        guideline.id,
        project_id=project.id,
        version=guideline.version,
        before=before,
        after={"body": guideline.body, "definitions": clean_defs},
    )
    session.flush()
    return guideline


def add_reference_image(
    session: Session,
    actor: User,
    project: Project,
    *,
    target: Any,
    caption: Any,
    filename: str,
    data: bytes,
    storage: Storage,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ReferenceImage:
    """Check an uploaded file like any import (hostile-file checks, EXIF stripped) and keep it as a
    reference image of `target`. Never an `Image`: never allocated, queued, exported or trained on."""
    chosen = _target(project, target)
    caption = clean_text(caption, "the caption", max_len=MAX_CAPTION, field="caption")
    try:
        result = process_image(data, filename, limits=limits)
    except ImageRejected as exc:
        raise ValidationError(f"'{filename}' cannot be used: {exc.reason}", field="file") from None
    existing = [r for r in reference_images(session, project) if r.target == chosen.key]
    if any(r.sha256 == result.sha256 for r in existing):
        raise Conflict(f"this image is already a reference for '{chosen.label}'")
    if len(existing) >= MAX_IMAGES_PER_TARGET:
        raise ValidationError(
            f"'{chosen.label}' already has {MAX_IMAGES_PER_TARGET} reference images; remove one first",
            field="file",
        )
    display_key = content_key("reference", result.sha256, result.display_ext)
    thumb_key = content_key("reference-thumbs", result.sha256, "jpg")
    storage.put(display_key, result.display_bytes)
    storage.put(thumb_key, result.thumb_bytes)
    ref = ReferenceImage(
        project_id=project.id,
        target=chosen.key,
        caption=caption,
        sha256=result.sha256,
        filename=filename[:500],
        width=result.display_size[0],
        height=result.display_size[1],
        display_key=display_key,
        thumb_key=thumb_key,
        created_by_id=actor.id,
    )
    session.add(ref)
    session.flush()
    record_event(
        session,
        actor,
        "reference_image.add",
        "reference_image",
        ref.id,
        project_id=project.id,
        target=chosen.key,
        caption=caption,
        filename=ref.filename,
        sha256=ref.sha256,
    )
    session.flush()
    return ref


def get_reference_image(session: Session, project: Project, ref_id: int) -> ReferenceImage:
    ref = session.get(ReferenceImage, ref_id)
    if ref is None or ref.project_id != project.id:
        raise NotFound("no such reference image in this project")
    return ref


def delete_reference_image(
    session: Session, actor: User, project: Project, ref_id: int
) -> ReferenceImage:
    """Remove a reference image (audited). Its files stay: content-addressed, maybe shared."""
    ref = get_reference_image(session, project, ref_id)
    record_event(
        session,
        actor,
        "reference_image.delete",
        "reference_image",
        ref.id,
        project_id=project.id,
        target=ref.target,
        caption=ref.caption,
        filename=ref.filename,
        sha256=ref.sha256,
    )
    session.delete(ref)
    session.flush()
    return ref


def guideline_view(session: Session, project: Project, image_url) -> dict[str, Any]:
    """What raters read: the rendered text and, per answer, its definition and reference images.

    `image_url(ref, kind)` gives a reference image's URL ("display" or "thumb").
    """
    guideline = get_guideline(session, project)
    definitions = (guideline.definitions if guideline else {}) or {}
    refs: dict[str, list[ReferenceImage]] = {}
    for ref in reference_images(session, project):
        refs.setdefault(ref.target, []).append(ref)
    sections = []
    for t in targets(project):
        images = [
            {
                "id": r.id,
                "caption": r.caption,
                "width": r.width,
                "height": r.height,
                "url": image_url(r, "display"),
                "thumb_url": image_url(r, "thumb"),
            }
            for r in refs.get(t.key, [])
        ]
        text = definitions.get(t.key)
        sections.append(
            {
                "target": t.key,
                "label": t.label,
                "definition": text,
                "definition_html": render_markdown(text) if text else None,
                "images": images,
            }
        )
    return {
        "version": guideline.version if guideline else 0,
        "body": guideline.body if guideline else "",
        "body_html": render_markdown(guideline.body) if guideline else "",
        "updated_at": guideline.updated_at.isoformat() if guideline else None,
        "sections": sections,
        "empty": not (guideline and guideline.body) and not definitions and not refs,
    }
