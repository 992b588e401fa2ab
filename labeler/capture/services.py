"""The quality check the browser runs, and the import of one captured case.

The browser gets the project's current quality model (its ONNX file, unchanged) and, as JSON,
everything it needs to run it the way the server does (labeler/ml/images.py and inference.py):
the input (the whole photo squashed to 224x224, RGB 0..255, NHWC float32; the graph normalises),
the output names, the class and explanation names in words and the per-explanation thresholds.
A captured case is imported through the normal import service (hostile-file checks, dedupe,
EXIF stripping, the import hooks: tiles and the server-side prescreen) with its case id and
body site set on every photo.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from .. import protocols
from ..auth.models import User
from ..errors import ValidationError
from ..images.services import ImportSummary, import_images, run_import_hooks
from ..images.sources import clean_name, iter_uploads
from ..images.storage import Storage
from ..ml.config import IMAGE_SIZE
from ..ml.errors import ModelNotFound
from ..projects.models import Project
from ..projects.settings import read_settings
from ..training.model_store import model_folder
from ..training.services import project_models
from ..validation import clean_text

MAX_PHOTOS = 3
QUALITY_KIND = "quality"  # the model kind (training.models.ModelKind), not a protocol name

# What the page says for each explanation above its threshold: a few words, then the advice
# (labels.json's explanation_text). Names a newer model adds fall back to its own texts.
ISSUE_WORDS = {
    "blurry": "Blurry",
    "bad_light": "Too dark or badly lit",
    "too_far_away": "Too far away",
    "bad_framing": "Badly framed",
    "low_resolution": "Too little detail",
}
# The quality classes, in words; a photo whose most likely class is not acceptable is flagged.
CLASS_WORDS = {
    "lesion": ("Skin with a lesion", True),
    "healthy_skin": ("Healthy skin", True),
    "no_skin": ("No skin in the photo", False),
    "poor_quality": ("Poor quality", False),
}


def current_quality_model(
    session: Session, config: Mapping[str, Any], project: Project
) -> tuple[str, Path] | None:
    """The model the project checks photos with: its prescreen model when it names one, else its
    newest trained quality model; None if it has none (a severity project never has one)."""
    models = [m for m in project_models(session, config, project) if m["kind"] == QUALITY_KIND]
    if not models:
        return None
    chosen = next((m for m in models if m["prescreen"]), models[0])
    try:
        return chosen["id"], model_folder(config, chosen["id"])
    except ModelNotFound:
        return None


def check_config(model_id: str, folder: Path) -> dict[str, Any]:
    """What the browser needs to run a quality model as the server does (no URLs: the view adds them)."""

    def read(name: str) -> Any:
        return json.loads((folder / name).read_text(encoding="utf-8"))

    labels, thresholds, meta = read("labels.json"), read("thresholds.json"), read("model.json")
    texts = labels.get("explanation_text", {})
    return {
        "available": True,
        "model_id": model_id,
        "model_bytes": (folder / "model.onnx").stat().st_size,
        "input": {
            "name": "image",
            "shape": [1, IMAGE_SIZE, IMAGE_SIZE, 3],
            "layout": "NHWC",
            "pixels": "RGB 0-255 as float32",
            "resize": "the whole photo squashed to the input size (no crop), upright (EXIF)",
            "normalised_by_the_model": True,
        },
        "outputs": {"classes": "class_probs", "explanations": "expl_probs"},
        "classes": [
            {
                "name": c,
                "text": CLASS_WORDS.get(c, (c.replace("_", " ").capitalize(), True))[0],
                "acceptable": CLASS_WORDS.get(c, ("", True))[1],
            }
            for c in labels["classes"]
        ],
        "explanations": [
            {
                "name": e,
                "words": ISSUE_WORDS.get(e, e.replace("_", " ").capitalize()),
                "advice": texts.get(e, ""),
                "threshold": float(thresholds[e]),
            }
            for e in labels["explanations"]
        ],
        "created": meta.get("created"),
    }


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def no_model_reason(project: Project) -> str:
    """Why the browser has no model, in the capturing clinician's words."""
    if protocols.get(project.protocol).model_kind != QUALITY_KIND:
        return (
            "This project's photos are not checked on the device (its protocol has no quality "
            "model), so they are uploaded without that check."
        )
    after = (
        "the server checks the photos after they are uploaded"
        if read_settings(project.settings).prescreen_model_id
        else "the photos are uploaded without a quality check"
    )
    return f"No quality model has been trained for this project yet, so {after}."


def new_case_id(now: datetime | None = None) -> str:
    """A case id no person typed: the date and a random part (no patient information)."""
    now = now or datetime.now(UTC)
    return f"case-{now:%Y%m%d}-{secrets.token_hex(3)}"


def import_case(
    session: Session,
    actor: User,
    project: Project,
    photos: list[tuple[str, BinaryIO]],
    *,
    body_site: Any,
    case_id: Any,
    storage: Storage,
    config: Mapping[str, Any],
    checkpoint: Callable[[], None],
) -> tuple[str, ImportSummary]:
    """Import up to MAX_PHOTOS photos as one case (case id and body site on each); returns the
    case id (typed, or a new one) and the import summary. Flushes; `checkpoint` commits."""
    if not photos:
        raise ValidationError("Take or choose at least one photo of the case.", status=400)
    if len(photos) > MAX_PHOTOS:
        raise ValidationError(
            f"A case has at most {MAX_PHOTOS} photos; this upload has {len(photos)}."
        )
    for name, _stream in photos:
        # judged on the name the import reads (control and format characters, spaces and folders
        # removed): "photos.zip " or "photos.zip" + a zero-width space is an archive to it too
        if clean_name(name).lower().endswith(".zip"):
            raise ValidationError("The capture page takes photos, not .zip archives.")
    site = clean_text(body_site, "The body site", max_len=100)
    case = clean_text(case_id, "The case id", max_len=200) or new_case_id()
    files = list(iter_uploads(photos))
    manifest = {
        f.name: {"case_id": case, "body_site": site, "meta": {"captured": True}} for f in files
    }
    summary = import_images(
        session,
        actor,
        project,
        files,
        storage=storage,
        source_label=f"capture {case}",
        manifest=manifest,
        checkpoint=checkpoint,
    )
    run_import_hooks(session, config, project, summary, storage)
    return case, summary
