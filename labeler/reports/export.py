"""Exports, streamed row by row: the fused label set, the raw labels, and the training manifest.

One service for the download buttons, `labeler export` and `GET /api/v1/projects/{id}/export`.

Training manifest (read by `labeler.ml.manifest`): JSON Lines. The first line is a header
`{"manifest": "labeler-training", "version": 1, "project_id": .., "protocol": .., "scale": [..]}`
(the severity scale values, severity projects only; grades are scale values); then one object
per image: `image_id`, `sha256`, `path` (absolute path of the display image), `case_id`,
`split` ("golden" | "fold"), `fitzpatrick` (1-6 or null: the import manifest's, else the raters'
fused answer to the skin-type question), `body_site` (or null), `quality`
(null, or `{"class": fused class or null for an unresolved tie, "tie": bool, "explanations":
[relevant explanations]}`), `severity` (null, or
`{"mean", "median", "std", "count", "grade"}`). Images nobody labeled are left out.

Skin type (a project that asks it, or whose labels carry answers: reports/skin_types.py): the fused
export gains `skin_type` (the raters' median type 1-6, null on a tie or without a graded answer),
`skin_type_median`, `skin_type_tie` ([low, high] or []), `skin_type_votes` (per type I-VI) and
`skin_type_cannot_assess`, beside the manifest's `fitzpatrick`; the raw export gains `skin_type`
(1-6, 0 for "cannot assess", null when not answered).
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import metrics, protocols
from ..auth.models import User
from ..cases.grouping import case_columns, case_members, load_unit_matrix, unit_images
from ..errors import ValidationError
from ..images.models import Image
from ..labeling.flags import flagged_image_ids, unsure_by_rater_image
from ..labeling.models import Label, LabelRevision
from ..metrics.breakdowns import parse_fitzpatrick
from ..projects.models import Project
from ..protocols.explanations import EXPLANATION_CODES
from ..protocols.quality import QUALITY_DECISIONS
from ..protocols.severity import NON_GRADED
from . import skin_types
from .figures import explanation_k, fuse, grade_value, num, project_scale
from .panel import reference_fusion

KINDS = ("fused", "raw")
FORMATS = ("csv", "jsonl")
RESOLUTION_NAMES = {int(r): r.name.lower() for r in metrics.Resolution}
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def check_export_args(kind: str, fmt: str) -> None:
    if kind not in KINDS:
        raise ValidationError(
            f"kind must be one of {', '.join(KINDS)}", status=400, code="bad_kind"
        )
    if fmt not in FORMATS:
        raise ValidationError(
            f"format must be one of {', '.join(FORMATS)}", status=400, code="bad_format"
        )


def _images(session: Session, project: Project):
    return session.execute(
        select(Image.id, Image.sha256, Image.filename, Image.case_id, Image.display_key)
        .where(Image.project_id == project.id)
        .order_by(Image.id)
        .execution_options(yield_per=2000)
    )


def fused_records(
    session: Session,
    project: Project,
    *,
    flagged_only: bool = False,
    assisted: bool | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per image with the fused values and the votes behind them, and how many raters
    marked it unsure (`unsure_count`). flagged_only: only images a rater flagged (unsure or a note)."""
    m, members = load_unit_matrix(session, project, assisted)  # per case: one row per case
    unsure_count: dict[int, int] = {}
    for _rater, image_id in unsure_by_rater_image(session, project):
        unsure_count[image_id] = unsure_count.get(image_id, 0) + 1
    settings = project.settings or {}
    protocol = protocols.get(project.protocol)
    quality = protocol.has_classes  # plurality over classes; else a mean of grades or, for skin
    graded = protocol.fusion == "mean"  # types, the median fusion of the skin-type columns
    # Fitzpatrick type 1-6 (parsed from the manifest column or a skin-type metadata entry)
    fitz = [parse_fitzpatrick(v) for v in m.fitzpatrick] if m.fitzpatrick is not None else None
    fitz = fitz or [None] * m.image_ids.size
    # the raters' fused answer to the skin-type question (columns only where the project has it)
    skin = skin_types.rater_fusion(m) if skin_types.reported(m, settings) else None
    if quality:
        fusion = fuse(m, settings)
        ref = reference_fusion(m, settings, fusion)  # the project's method: plurality or DS
        posterior = ref.dawid_skene.posterior if ref.dawid_skene is not None else None
        labeled = m.classes >= 0
        relevance = metrics.explanation_relevance(
            m.explanations, labeled, k=explanation_k(settings)
        )
        diag = metrics.fuse_diagnoses(m.diagnosis)
    elif graded:
        consensus = metrics.severity_consensus(m.grades, project_scale(settings))
        labeled = m.labeled
        relevance = metrics.explanation_relevance(
            m.explanations, labeled, k=explanation_k(settings)
        )
        ng_counts = [(m.non_graded == i).sum(axis=1) for i in range(len(NON_GRADED))]
        scale = project_scale(settings)
        # Votes per scale value behind the consensus (codes: position on the scale, -1 none).
        grade_codes = metrics.grade_codes(m.grades, scale)
        grade_votes = (grade_codes[:, :, None] == np.arange(len(scale))).sum(axis=1)
        grade_names = [str(grade_value(v)) for v in scale]
    else:  # skin types: the fused columns come from skin_types (median, votes, ties)
        relevance = metrics.explanation_relevance(
            m.explanations, m.labeled, k=explanation_k(settings)
        )
    for i, img, photos in unit_images(_images(session, project), m, members):
        if flagged_only and not m.flagged[i]:
            continue
        rec: dict[str, Any] = {
            "image_id": img.id,
            "sha256": img.sha256,
            "filename": img.filename,
            "case_id": img.case_id,
            "split": "golden" if m.golden[i] else "fold",
            "fitzpatrick": fitz[i],
            "body_site": m.body_site[i] if m.body_site is not None else None,
            "rater_count": int(m.labeled[i].sum()),
            "unsure_count": unsure_count.get(img.id, 0),
        }
        if photos is not None:  # a per-case label: exported once per case, with its photos
            rec.update(case_columns(photos))
            rec["unsure_count"] = sum(unsure_count.get(p.id, 0) for p in photos)
        if skin is not None:
            rec.update(skin_types.fused_columns(skin, i))
        counts = relevance.counts[i]
        rec["explanation_counts"] = {e: int(counts[k]) for k, e in enumerate(EXPLANATION_CODES)}
        rec["relevant_explanations"] = [
            e for k, e in enumerate(EXPLANATION_CODES) if relevance.relevant[i, k]
        ]
        if quality:
            code = int(ref.fused[i])
            rec.update(
                {
                    "fused_class": QUALITY_DECISIONS[code] if code >= 0 else None,
                    "fusion_method": ref.method,
                    "tie": bool(fusion.is_tie[i]),
                    "tied_classes": [
                        c for k, c in enumerate(QUALITY_DECISIONS) if fusion.tied[i, k]
                    ],
                    "resolution": ref.resolution[i],
                    "votes": {c: int(fusion.votes[i, k]) for k, c in enumerate(QUALITY_DECISIONS)},
                    "diagnosis": m.diagnosis_codes[diag.code[i]] if diag.code[i] >= 0 else None,
                    "diagnosis_votes": int(diag.votes[i]),
                    "diagnosis_tie": bool(diag.is_tie[i]),
                    "diagnosis_tied_codes": [m.diagnosis_codes[c] for c in diag.tied[i] if c >= 0],
                    "adjudication": QUALITY_DECISIONS[m.adjudication[i]]
                    if m.adjudication[i] >= 0
                    else None,
                    "adjudication_outdated": bool(fusion.adjudication_outdated[i]),
                }
            )
            if posterior is not None:  # Dawid-Skene: P(true class | votes) behind the fused class
                rec["posterior"] = {
                    c: num(posterior[i, k]) for k, c in enumerate(QUALITY_DECISIONS)
                }
        elif graded:
            rec["severity"] = {
                "mean": num(consensus.mean[i]),
                "median": num(consensus.median[i]),
                "std": num(consensus.std[i]),
                "count": int(consensus.count[i]),
                "grade": grade_value(consensus.value[i]) if consensus.grade[i] > 0 else None,
            }
            rec["grade_votes"] = {g: int(grade_votes[i, k]) for k, g in enumerate(grade_names)}
            rec["non_graded"] = {name: int(ng_counts[k][i]) for k, name in enumerate(NON_GRADED)}
        yield rec


def raw_records(
    session: Session,
    project: Project,
    *,
    revisions: bool = False,
    flagged_only: bool = False,
    assisted: bool | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per current label (or per revision, oldest first, when revisions=True), with
    `unsure`: the rater's current "unsure" mark on the image. flagged_only: only flagged images."""
    unsure = unsure_by_rater_image(session, project)
    cases = case_members(session, project)  # per-case projects: first photo -> the case's photos
    flagged = flagged_image_ids(session, project) if flagged_only else None
    src = LabelRevision if revisions else Label
    with_skin = skin_types.project_reports(session, project)  # 1-6, 0 cannot assess, null
    cols = (
        src.decision,
        src.icd10,
        src.icd10_missing_text,
        src.explanations,
        src.grade,
        src.time_spent_ms,
        src.version,
        src.created_at if revisions else src.updated_at,
    )
    stmt = (
        select(
            Label.id,
            Label.image_id,
            Label.rater_id,
            Image.sha256,
            Image.filename,
            User.email,
            *cols,
            src.skin_type,
            src.assisted,
            src.suggestion_model_id,
        )
        .join(Image, Image.id == Label.image_id)
        .join(User, User.id == Label.rater_id)
        .where(Label.project_id == project.id)
    )
    if assisted is not None:  # made with (1) or without (0) the model's suggestion shown
        stmt = stmt.where(src.assisted.is_(assisted))
    if revisions:
        stmt = stmt.join(LabelRevision, LabelRevision.label_id == Label.id).order_by(
            Label.id, LabelRevision.version
        )
    else:
        stmt = stmt.order_by(Label.image_id, Label.rater_id)
    # plain column rows, not ORM objects: this is the hot loop of a 100k-label export
    for (
        label_id,
        image_id,
        rater_id,
        sha,
        filename,
        email,
        decision,
        icd10,
        missing,
        expl,
        grade,
        spent,
        version,
        at,
        skin,
        shown,
        suggestion_model,
    ) in session.execute(stmt.execution_options(yield_per=5000)):
        if flagged is not None and image_id not in flagged:
            continue
        if cases is not None and image_id not in cases:
            continue  # a per-case label: exported once, with the case's first photo
        yield {
            "label_id": label_id,
            "version": version,
            "image_id": image_id,
            "sha256": sha,
            "filename": filename,
            "rater_id": rater_id,
            "rater_email": email,
            "decision": decision,
            "icd10": icd10,
            "icd10_missing_text": missing,
            "explanations": list(expl or ()),
            "grade": grade,
            "time_spent_ms": spent,
            "unsure": (rater_id, image_id) in unsure,
            "assisted": bool(shown),  # the model's suggestion was shown (pre-labeling)
            "suggestion_model_id": suggestion_model,
            "at": at.isoformat(),
            **({"skin_type": skin} if with_skin else {}),
            **(case_columns(cases[image_id]) if cases is not None else {}),
        }


def _path(storage, key: str) -> str | None:
    path = storage.path(key)
    return str(path) if path else None


def training_manifest(session: Session, project: Project, storage) -> Iterator[str]:
    """The training manifest as JSON lines (see the module docstring)."""
    yield (
        json.dumps(
            {
                "manifest": "labeler-training",
                "version": 1,
                "project_id": project.id,
                "protocol": project.protocol.value,
                **protocols.get(project.protocol).manifest_header(
                    protocols.get(project.protocol).parse_settings(project.settings)
                ),
            }
        )
        + "\n"
    )
    keys = {}
    for img in _images(session, project):
        keys[img.id] = img.display_key
    for rec in fused_records(session, project):
        if not rec["rater_count"]:
            continue
        path = storage.path(keys[rec["image_id"]])
        out = {
            "image_id": rec["image_id"],
            "sha256": rec["sha256"],
            "path": str(path) if path else None,
            "case_id": rec["case_id"],
            "split": rec["split"],
            # the manifest's type, else the raters' fused answer to the skin-type question
            "fitzpatrick": rec["fitzpatrick"]
            if rec["fitzpatrick"] is not None
            else rec.get("skin_type"),
            "body_site": rec["body_site"],
            # one object per protocol with a model (quality, severity); null but for its own
            **{p.manifest_field: None for p in protocols.all() if p.manifest_field},
        }
        if "image_ids" in rec:  # a per-case label: every photo of the case carries it
            out["images"] = [
                {"image_id": i, "sha256": sha, "path": _path(storage, keys[i])}
                for i, sha in zip(rec["image_ids"], rec["sha256s"], strict=True)
            ]
        if "fused_class" in rec:
            out["quality"] = {
                "class": rec["fused_class"],
                "tie": rec["tie"] and rec["resolution"] not in ("adjudicated", "dawid_skene"),
                "explanations": rec["relevant_explanations"],
            }
        elif "severity" in rec:
            out["severity"] = rec["severity"]
        yield json.dumps(out) + "\n"


# OWASP CSV injection: a spreadsheet runs a cell that starts with one of these as a formula
# (=HYPERLINK(...), @SUM(...), a tab or carriage return that hides one). Text cells starting so get a
# leading apostrophe, which spreadsheets show as plain text; JSON Lines keeps the exact text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Text that is a plain decimal number ("-3", "+1.5", "2e-3") cannot be a formula: left as written,
# like numeric cells (a negative grade or mean is data, never touched).
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """A CSV cell: text that a spreadsheet would run as a formula is prefixed with an apostrophe."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    """Flatten one record for CSV: nested dicts become prefixed columns, lists ';'-joined strings."""
    flat: dict[str, Any] = {}
    for key, value in rec.items():
        kind = type(value)
        if kind is dict:
            prefix = "votes_" if key == "votes" else key + "_"
            for sub, v in value.items():
                flat[prefix + sub] = v
        elif kind is list:
            flat[key] = ";".join(map(str, value))
        else:
            flat[key] = value
    return flat


CHUNK_ROWS = 500  # rows per streamed chunk: few enough writes, small enough to keep memory flat


def serialize(records: Iterable[dict[str, Any]], fmt: str) -> Iterator[str]:
    """CSV (flattened, header from the first record) or JSON Lines, in chunks of CHUNK_ROWS records."""
    buf = io.StringIO()
    rows = 0
    if fmt == "jsonl":
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        for rec in records:
            buf.write(dumps(rec))
            buf.write("\n")
            rows += 1
            if rows % CHUNK_ROWS == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    else:
        writer = fields = None
        for rec in records:
            flat = _flat(rec)
            if writer is None:
                fields = list(flat)
                writer = csv.writer(buf)
                writer.writerow(fields)
            writer.writerow([csv_cell(flat.get(f)) for f in fields])
            rows += 1
            if rows % CHUNK_ROWS == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    if buf.tell():
        yield buf.getvalue()


def export_chunks(
    session: Session,
    project: Project,
    kind: str,
    fmt: str,
    *,
    revisions: bool = False,
    flagged_only: bool = False,
    assisted: bool | None = None,
) -> Iterator[str]:
    """The export as text chunks (streamed by pages, API and CLI alike)."""
    check_export_args(kind, fmt)
    records = (
        fused_records(session, project, flagged_only=flagged_only, assisted=assisted)
        if kind == "fused"
        else raw_records(
            session, project, revisions=revisions, flagged_only=flagged_only, assisted=assisted
        )
    )
    return serialize(records, fmt)


def export_filename(project: Project, kind: str, fmt: str, *, revisions: bool = False) -> str:
    """The download's name: the project's name (letters of any script), kind and format; the raw
    export of every revision is "<name>-raw-all-revisions.<fmt>", never the plain raw file's name."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in project.name)[:60]
    return f"{safe}-{kind}{'-all-revisions' if revisions else ''}.{fmt}"


def export_disposition(project: Project, kind: str, fmt: str, *, revisions: bool = False) -> str:
    """The Content-Disposition header of an export download (RFC 6266 with RFC 5987's filename*).

    HTTP headers are Latin-1 (gunicorn refuses anything else), so `filename` is an ASCII fallback
    (accents dropped; a name with no ASCII letter at all becomes project-<id>) and `filename*` carries
    the UTF-8 name, percent-encoded, for the browsers that read it (all current ones).
    """
    name = export_filename(project, kind, fmt, revisions=revisions)
    tail = name[len(export_filename(project, "", "")) - 2 :]  # "-<kind>[-all-revisions].<fmt>"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem = ascii_name[: -len(tail)]
    if not any(ch.isalnum() for ch in stem):
        ascii_name = f"project-{project.id}{tail}"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
