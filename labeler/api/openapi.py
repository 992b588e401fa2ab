"""The OpenAPI document for /api/v1 (a test checks that every API route is described)."""

from __future__ import annotations

from flask import jsonify

from .. import protocols
from ..ml.config import BACKBONE_BLOCKS
from ..projects.settings import CASE_UNITS, FUSION_METHODS, QUEUE_ORDERS, TIE_POLICIES
from ..protocols.explanations import EXPLANATION_CODES
from ..protocols.quality import QUALITY_DECISIONS
from .blueprint import bp
from .webhooks import WEBHOOK_PATHS

ERROR = {"$ref": "#/components/schemas/Error"}


def _import_op() -> dict:
    """Image import: imported in the request (201/200 with the per-file result) or, above
    LABELER_IMPORT_JOB_MB, stored and imported by a worker (202 with the job and its URL)."""
    op = _op(
        "Import images: multipart field 'files', one or many, or a .zip. Uploads larger than "
        "LABELER_IMPORT_JOB_MB (default 64 MB) are imported by a background worker: the answer is "
        "202 Accepted with the job and its URL (also in Location); poll it",
        ok=201,
        params=[_path_id("project_id")],
        multipart=True,
        body={
            "type": "object",
            "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
            },
        },
    )
    op["responses"]["200"] = {"description": "nothing new was imported (duplicates, rejections)"}
    op["responses"]["202"] = {
        "description": "accepted: a worker imports the upload; poll the job's URL "
        "(/api/v1/import-jobs/{job_id})"
    }
    return op


def _op(
    summary: str,
    *,
    body: dict | None = None,
    ok: int = 200,
    params: list | None = None,
    multipart: bool = False,
) -> dict:
    op: dict = {
        "summary": summary,
        "responses": {
            str(ok): {"description": "success"},
            "400": {
                "description": "bad request",
                "content": {"application/json": {"schema": ERROR}},
            },
            "401": {
                "description": "not signed in",
                "content": {"application/json": {"schema": ERROR}},
            },
            "403": {
                "description": "not allowed",
                "content": {"application/json": {"schema": ERROR}},
            },
            "404": {"description": "not found", "content": {"application/json": {"schema": ERROR}}},
            "422": {"description": "invalid", "content": {"application/json": {"schema": ERROR}}},
        },
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["responses"]["413"] = {
            "description": "request body too large: 1 MB for JSON; LABELER_MAX_UPLOAD_MB for "
            "image import",
            "content": {"application/json": {"schema": ERROR}},
        }
        ctype = "multipart/form-data" if multipart else "application/json"
        op["requestBody"] = {"required": True, "content": {ctype: {"schema": body}}}
    return op


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


_PUBLIC_ID = {"name": "public_id", "in": "path", "required": True, "schema": {"type": "string"}}
# each protocol's own settings, as the protocol describes them (labeler/protocols/)
_PROTOCOL_SETTINGS = {k: v for p in protocols.all() for k, v in p.openapi_settings().items()}
_LABEL_BODY = {
    "type": "object",
    "properties": {
        "decision": {
            "enum": list(protocols.all_decisions()),
            "description": "the decisions of every protocol; a project takes its own protocol's",
        },
        "icd10": {
            "type": ["string", "null"],
            "description": "an ICD-10-CM code (quality protocol, lesion)",
        },
        "icd10_missing_text": {
            "type": ["string", "null"],
            "description": "free-text diagnosis when the code is "
            "not in the list ('ICD-10 missing')",
        },
        "explanations": {
            "type": "array",
            "items": {"enum": list(EXPLANATION_CODES)},
        },
        "grade": {
            "type": ["number", "null"],
            "description": "a value of the project's severity scale; skin type projects: 1-6 for "
            "Fitzpatrick I-VI (decision 'graded'), none with 'cannot_assess'",
        },
        "skin_type": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": 6,
            "description": "the optional second answer of a project that also asks the "
            "Fitzpatrick skin type (setting ask_skin_type): 1-6 for types I-VI, 0 for 'cannot "
            "assess'; refused with 422 when the project does not ask it",
        },
        "base_version": {
            "type": ["integer", "null"],
            "description": "the label version the edit started from "
            "(0 or null for a first label); a stale one gets 409 with the current label",
        },
        "submission_id": {
            "type": ["string", "null"],
            "description": "client-made id; a retry with the same id "
            "does not create a second revision",
        },
        "time_spent_ms": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "milliseconds spent on this submission; each adds at most an hour "
            "(3600000) to the label's total",
        },
    },
}
LABELING_PATHS: dict[str, dict] = {
    "/api/v1/items/{public_id}/label": {
        "get": _op(
            "The caller's own label of a queue item, its history and the queue position",
            params=[_PUBLIC_ID],
        ),
        "put": _op(
            "Save the caller's label of a queue item (validated; 409 on a stale base_version); with "
            "next=1 the answer also carries the next item to label, as GET .../queue/next serves it",
            params=[
                _PUBLIC_ID,
                {"name": "next", "in": "query", "schema": {"type": "integer", "enum": [0, 1]}},
            ],
            body=_LABEL_BODY,
        ),
    },
    "/api/v1/items/{public_id}/skip": {
        "post": _op(
            "Skip a queue item for now, with an optional reason (a skip is not a label)",
            params=[_PUBLIC_ID],
            body={"type": "object", "properties": {"reason": {"type": "string"}}},
        ),
    },
    "/api/v1/icd10": {
        "get": _op(
            "Search ICD-10-CM by code prefix or words of the name",
            params=[
                {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "maximum": 50},
                },
            ],
        ),
    },
}

_CASE_ID = {
    "name": "public_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "a case is named by the opaque id of any of the caller's photos (items) in it",
}
_CASE_BODY = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the ids of the case's photos as the case gave them; if the case "
            "changed meanwhile nothing is saved (409 case_changed)",
        },
        "answer": {
            **_LABEL_BODY,
            "description": "per-case projects (settings cases.unit 'case'): the one answer, "
            "written on every photo of the case in one transaction",
        },
        "base_version": {
            "type": "integer",
            "minimum": 0,
            "description": "per case: the case label's version you started from (0: none)",
        },
        "answers": {
            "type": "object",
            "additionalProperties": {
                **_LABEL_BODY,
                "properties": {
                    **_LABEL_BODY["properties"],
                    "base_version": {"type": "integer", "minimum": 0},
                },
            },
            "description": "per-image projects: photo id -> its answer; every unlabeled photo "
            "needs one",
        },
        "submission_id": {"type": "string", "maxLength": 64},
        "time_spent_ms": {"type": "number", "minimum": 0},
    },
}
CASE_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}/queue/next-case": {
        "get": _op(
            "The caller's next case {case: {case, unit, status, photos: [{item, status, "
            "image_url, body_site, details, label}], label, progress, next}} or {case: null}",
            params=[_path_id("project_id")],
        ),
    },
    "/api/v1/cases/{public_id}": {
        "get": _op("One of the caller's cases, every photo with its label", params=[_CASE_ID]),
    },
    "/api/v1/cases/{public_id}/label": {
        "put": _op(
            "Answer a case: once for the case or once per photo, as the project's unit says "
            "(409 on a stale base_version or a changed case; retries with the same "
            "submission_id change nothing); next=1 also serves the next case",
            params=[
                _CASE_ID,
                {"name": "next", "in": "query", "schema": {"type": "integer", "enum": [0, 1]}},
            ],
            body=_CASE_BODY,
        ),
    },
    "/api/v1/cases/{public_id}/skip": {
        "post": _op(
            "Put the case's unlabeled photos aside together, with an optional reason",
            params=[_CASE_ID],
            body={"type": "object", "properties": {"reason": {"type": "string"}}},
        ),
    },
}

_ALLOCATION_BODY = {
    "type": "object",
    "required": ["raters"],
    "properties": {
        "raters": {"type": "array", "items": {"type": "string", "format": "email"}},
        "golden_size": {
            "type": "integer",
            "minimum": 0,
            "description": "golden images drawn at random "
            "(whole cases); give this or golden_image_ids",
        },
        "golden_image_ids": {"type": "array", "items": {"type": "integer"}},
        "overlap": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "description": "raters per non-golden image",
        },
        "seed": {
            "type": "integer",
            "minimum": 0,
            "description": "same inputs and seed, same allocation",
        },
    },
}
_ITEM_ID = {
    "name": "public_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the rater's opaque item id",
}
ALLOCATION_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}/allocation": {
        "get": _op(
            "Allocation summary: fold sizes, items per rater, golden share, progress (leads, admins)",
            params=[_path_id("project_id")],
        ),
        "post": _op(
            "Allocate the project's images to raters (once per project; 409 if allocated)",
            ok=201,
            params=[_path_id("project_id")],
            body=_ALLOCATION_BODY,
        ),
    },
    "/api/v1/projects/{project_id}/allocation/raters/preview": {
        "post": _op(
            "What adding (or, with remove: true, removing) a rater would move, and the rule; writes "
            "nothing. Only items their rater was never shown and has not labeled move; a removed "
            "rater's unlabeled work all moves",
            params=[_path_id("project_id")],
            body={
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string"}, "remove": {"type": "boolean"}},
            },
        ),
    },
    "/api/v1/projects/{project_id}/allocation/raters": {
        "post": _op(
            "Add a rater later: golden set plus fold work never shown to its rater, moved from the "
            "most loaded",
            ok=201,
            params=[_path_id("project_id")],
            body={
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string"}},
            },
        ),
    },
    "/api/v1/projects/{project_id}/allocation/raters/remove": {
        "post": _op(
            "Remove a rater: their labels stay (for the leads), their unlabeled work moves to "
            "others, and they keep no access to the project's items",
            params=[_path_id("project_id")],
            body={
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string"}},
            },
        ),
    },
    "/api/v1/projects/{project_id}/queue/next": {
        "get": _op(
            "The caller's next item {item: {id, image_url, position, total, done}} (done: how many "
            "of the caller's items in the project are labeled) or {item: null}",
            params=[_path_id("project_id")],
        ),
    },
    "/api/v1/items/{public_id}": {
        "get": _op(
            "One of the caller's own queue items (404 for anything else)", params=[_ITEM_ID]
        ),
    },
    "/api/v1/items/{public_id}/image": {
        "get": _op(
            "The display image of one of the caller's own items (never cached)", params=[_ITEM_ID]
        ),
    },
    "/api/v1/items/{public_id}/tiles": {
        "get": _op(
            "The deep-zoom (DZI) description of the item's full-resolution image, for "
            "OpenSeadragon: tiles are at Url + level/col_row.jpg (never cached); tile_source is "
            "null while the tiles are being prepared after the import (show the display image)",
            params=[_ITEM_ID],
        ),
    },
    "/api/v1/items/{public_id}/tiles/{level}/{col}_{row}.jpg": {
        "get": _op(
            "One 256 px JPEG tile of the item's full-resolution image (no EXIF; never cached)",
            params=[_ITEM_ID, _path_id("level"), _path_id("col"), _path_id("row")],
        ),
    },
}

_FLAGGED = {
    "name": "flagged",
    "in": "query",
    "schema": {"type": "boolean"},
    "description": "only images a rater flagged (marked unsure or left a note for the leads)",
}
_FLAG_BODY = {
    "type": "object",
    "properties": {
        "unsure": {"type": "boolean", "description": "the caller is unsure about this image"},
        "comment": {
            "type": ["string", "null"],
            "maxLength": 1000,
            "description": "a note for the project's leads (never shown to other raters)",
        },
    },
}
GUIDELINE_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}/guidelines": {
        "get": _op(
            "The project's guidelines as its raters read them: the Markdown and its HTML (raw "
            "HTML escaped), and per answer its definition and reference images (raters of the "
            "project, leads, admins)",
            params=[_path_id("project_id")],
        ),
        "put": _op(
            "Write the guidelines (Markdown) and the definition of each answer; 409 when "
            "base_version is not the current version (leads, admins; audited)",
            params=[_path_id("project_id")],
            body={
                "type": "object",
                "properties": {
                    "body": {"type": "string", "maxLength": 50000},
                    "definitions": {
                        "type": "object",
                        "description": "answer -> definition; answers are 'grade:<value>', "
                        "'decision:<code>', 'explanation:<code>' of the project's protocol",
                        "additionalProperties": {"type": "string", "maxLength": 2000},
                    },
                    "base_version": {"type": ["integer", "null"]},
                },
            },
        ),
    },
    "/api/v1/projects/{project_id}/reference-images": {
        "post": _op(
            "Add a reference image of an answer ('general' or one of the definition keys): "
            "checked like every import, EXIF removed; never allocated, queued, exported or "
            "trained on (leads, admins; audited; 409 if already there)",
            ok=201,
            params=[_path_id("project_id")],
            multipart=True,
            body={
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "target": {"type": "string"},
                    "caption": {"type": "string", "maxLength": 500},
                },
            },
        ),
    },
    # the files raters load with the guidelines (the leads manage them at /reference-images)
    "/api/v1/projects/{project_id}/guidelines/images/{ref_id}/{kind}": {
        "get": _op(
            "A reference image: its display copy or thumbnail (raters of the project, leads, "
            "admins)",
            params=[
                _path_id("project_id"),
                _path_id("ref_id"),
                {
                    "name": "kind",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["display", "thumb"]},
                },
            ],
        ),
    },
    "/api/v1/projects/{project_id}/reference-images/{ref_id}": {
        "delete": _op(
            "Remove a reference image (leads, admins; audited)",
            params=[_path_id("project_id"), _path_id("ref_id")],
        ),
    },
    "/api/v1/items/{public_id}/flag": {
        "get": _op("The caller's flag on a queue item and the lead's answer", params=[_PUBLIC_ID]),
        "put": _op(
            "Mark the caller's queue item unsure and/or leave a note for the project's leads "
            "(audited; a change reopens an answered flag)",
            params=[_PUBLIC_ID],
            body=_FLAG_BODY,
        ),
    },
    "/api/v1/projects/{project_id}/flags": {
        "get": _op(
            "Flagged images with the rater, their label, note and the answer (leads, admins)",
            params=[
                _path_id("project_id"),
                {"name": "status", "in": "query", "schema": {"enum": ["open", "answered", "all"]}},
            ],
        ),
    },
    "/api/v1/projects/{project_id}/flags/{flag_id}/answer": {
        "post": _op(
            "Answer a rater's flag; the rater sees it on that item (leads, admins; audited)",
            params=[_path_id("project_id"), _path_id("flag_id")],
            body={
                "type": "object",
                "required": ["answer"],
                "properties": {"answer": {"type": "string", "maxLength": 1000}},
            },
        ),
    },
}
_SCOPE = {"name": "scope", "in": "query", "schema": {"enum": ["all", "golden", "fold", "flagged"]}}
_ASSISTED = {
    "name": "assisted",
    "in": "query",
    "schema": {"enum": ["0", "1"]},
    "description": "only labels made without (0) or with (1) the model's suggestion shown "
    "(pre-labeling); absent: all. The agreement JSON says how many assisted labels it rests on",
}
REPORT_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}/agreement": {
        "get": _op(
            "Agreement figures (docs/domain.md section 5) for a scope",
            params=[_path_id("project_id"), _SCOPE, _ASSISTED],
        ),
    },
    "/api/v1/projects/{project_id}/export": {
        "get": _op(
            "Stream the fused or raw label set as CSV or JSON Lines",
            params=[
                _path_id("project_id"),
                {"name": "kind", "in": "query", "schema": {"enum": ["fused", "raw"]}},
                {"name": "format", "in": "query", "schema": {"enum": ["csv", "jsonl"]}},
                {"name": "revisions", "in": "query", "schema": {"type": "boolean"}},
                _FLAGGED,
                _ASSISTED,
            ],
        ),
    },
    "/api/v1/projects/{project_id}/ties": {
        "get": _op(
            "Images whose fused class is tied, with votes and adjudications, and whether a "
            "rater flagged them",
            params=[_path_id("project_id"), _FLAGGED],
        ),
    },
    "/api/v1/projects/{project_id}/ties/{image_id}": {
        "post": _op(
            "Adjudicate a tied image: one of its tied classes decides it",
            params=[_path_id("project_id"), _path_id("image_id")],
            body={
                "type": "object",
                "required": ["decision"],
                "properties": {
                    "decision": {"type": "string"},
                    "note": {"type": "string"},
                },
            },
        ),
    },
}

_MODEL_ID = {
    "name": "model_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "a trained model's id, e.g. quality-20261126T120000-a1b2c3",
}
_RUN_BODY = {
    "type": "object",
    "properties": {
        "kind": {
            "enum": [p.model_kind for p in protocols.all() if p.model_kind],
            "description": "default: the model of the project's protocol",
        },
        "seed": {"type": "integer", "minimum": 0, "default": 0},
        "epochs": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": 1000,
            "description": "default: the model config's",
        },
        "fine_tune_blocks": {
            "type": "integer",
            "minimum": 0,
            "maximum": BACKBONE_BLOCKS,
            "default": 0,
            "description": "quality models only: also train the backbone's last N blocks with the "
            "heads; the worker needs a GPU, otherwise the run fails saying so",
        },
    },
}
_PREDICT = _op(
    "Predict with a trained model (leads of its project, admins; raters label blind). Send the image as "
    "multipart field 'image' or as the raw body. Quality: class, probabilities, issues above threshold "
    "with plain-language text (?cams=1 adds Grad-CAM maps); severity: score, grade, patch boxes. "
    "413 past 20 MB, 422 for what is not a usable image",
    params=[_MODEL_ID, {"name": "cams", "in": "query", "schema": {"type": "boolean"}}],
    multipart=True,
    body={"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}},
)
_PREDICT["responses"]["413"] = {
    "description": "image too large",
    "content": {"application/json": {"schema": ERROR}},
}
TRAINING_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}/models": {
        "get": _op(
            "The project's trained models: id, kind, size, golden-set verdict, prescreen use (leads, admins)",
            params=[_path_id("project_id")],
        ),
    },
    "/api/v1/projects/{project_id}/training-runs": {
        "post": _op(
            "Queue a training run; a background worker trains and evaluates it (409 while one is in "
            "progress)",
            ok=202,
            params=[_path_id("project_id")],
            body=_RUN_BODY,
        ),
    },
    "/api/v1/training-runs/{run_id}": {
        "get": _op(
            "A training run: status queued|running|succeeded|failed|cancelled, stage, done/total, model_id, error, "
            "verdict",
            params=[_path_id("run_id")],
        ),
    },
    "/api/v1/training-runs/{run_id}/cancel": {
        "post": _op(
            "Cancel a queued or running run: it reads cancelled at once and its worker stops at its "
            "next progress step; 409 when the run is not in progress",
            params=[_path_id("run_id")],
        ),
    },
    "/api/v1/training-runs/{run_id}/retry": {
        "post": _op(
            "Queue a failed or cancelled run again (the same run and task id: delivered twice, it "
            "still trains once); 202 with the run, 409 when it is not failed or cancelled",
            params=[_path_id("run_id")],
            ok=202,
        ),
    },
    "/api/v1/models/{model_id}/predict": {"post": _PREDICT},
}

_STUDY_ID = _path_id("study_id")
_READING_ID = {"name": "reading_id", "in": "path", "required": True, "schema": {"type": "string"}}
_READING_BODY = {
    "type": "object",
    "properties": {
        "decision": {"type": "string"},
        "icd10": {"type": ["string", "null"]},
        "icd10_missing_text": {"type": ["string", "null"]},
        "explanations": {"type": "array", "items": {"type": "string"}},
        "grade": {"type": ["number", "null"]},
        "time_spent_ms": {"type": "integer", "minimum": 0},
    },
    "description": "an answer as for a label (the project's protocol); a reading is answered once",
}
ASSIST_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}/suggestion-jobs": {
        "get": _op(
            "Jobs computing a model's suggestions for the project's images (leads, admins)",
            params=[_path_id("project_id")],
        ),
        "post": _op(
            "Compute a model's suggestions for every image of the project still without one, in a "
            "background job (never in a request); 422 for a model this server lacks or of another kind",
            ok=202,
            params=[_path_id("project_id")],
            body={
                "type": "object",
                "required": ["model_id"],
                "properties": {"model_id": {"type": "string"}},
            },
        ),
    },
    "/api/v1/projects/{project_id}/reader-studies": {
        "get": _op("The project's reader studies (leads, admins)", params=[_path_id("project_id")]),
        "post": _op(
            "Start a reader study on the golden set: every rater reads their images twice, one phase "
            "with the model's suggestions and one without (order drawn per rater from the seed), the "
            "second phase opening washout_days after the rater finished the first; 409 while another "
            "study is open, without a golden set, or before the model's suggestions are computed",
            ok=201,
            params=[_path_id("project_id")],
            body={
                "type": "object",
                "required": ["model_id", "washout_days", "seed"],
                "properties": {
                    "model_id": {"type": "string"},
                    "washout_days": {"type": "integer", "minimum": 0, "maximum": 365},
                    "seed": {"type": "integer", "minimum": 0},
                },
            },
        ),
    },
    "/api/v1/projects/{project_id}/reader-studies/{study_id}/close": {
        "post": _op(
            "Close a reader study (no more readings)", params=[_path_id("project_id"), _STUDY_ID]
        ),
    },
    "/api/v1/projects/{project_id}/reader-studies/{study_id}/report": {
        "get": _op(
            "The study's report: per rater and overall, accuracy against the fused golden reference "
            "(macro F1 for quality, RMSE for severity) unassisted vs assisted, the paired difference "
            "with a percentile bootstrap 95% interval over golden images, and how often answers moved "
            "to or away from the model's when it was right or wrong",
            params=[_path_id("project_id"), _STUDY_ID],
        ),
    },
    "/api/v1/projects/{project_id}/reader-study/next": {
        "get": _op(
            "The caller's next reading in the project's open study (raters): the phase open now, "
            "progress, when phase 2 opens, and the reading (suggestion null in the unassisted phase)",
            params=[_path_id("project_id")],
        ),
    },
    "/api/v1/readings/{reading_id}": {
        "get": _op("One of the caller's readings", params=[_READING_ID]),
        "put": _op(
            "Answer a reading of the phase open now (409 when answered, or before the washout ends); "
            "answers with the next reading",
            params=[_READING_ID],
            body=_READING_BODY,
        ),
    },
    "/api/v1/readings/{reading_id}/image": {
        "get": _op("The reading's image (never cached)", params=[_READING_ID]),
    },
}


_MEMBER_BODY = {
    "type": "object",
    "required": ["email", "role"],
    "properties": {
        "email": {"type": "string", "description": "an address without an account is invited"},
        "role": {"enum": ["lead", "rater"]},
        "name": {"type": "string", "description": "display name of a new invitation"},
    },
}
_SETTINGS_BODY = {
    "type": "object",
    "required": ["settings"],
    "properties": {
        "settings": {
            "type": "object",
            "description": "the settings to change (sections merge key by key)",
            "properties": {
                **_PROTOCOL_SETTINGS,  # scale, allow_non_graded, prescreen_model_id
                "ask_skin_type": {
                    "type": "boolean",
                    "description": "quality and severity: also ask each rater the Fitzpatrick "
                    "skin type (an optional second question; off by default)",
                },
                "fusion": {
                    "type": "object",
                    "properties": {
                        "method": {"enum": list(FUSION_METHODS)},
                        "tie_policy": {"enum": list(TIE_POLICIES)},
                        "precedence": {"type": "array", "items": {"enum": list(QUALITY_DECISIONS)}},
                        "explanation_k": {"type": "integer", "minimum": 1},
                    },
                },
                "agreement": {
                    "type": "object",
                    "properties": {
                        "min_pair_images": {"type": "integer", "minimum": 1},
                        "min_group_images": {"type": "integer", "minimum": 1},
                        "min_eval_images": {"type": "integer", "minimum": 1},
                    },
                },
                "queue": {
                    "type": "object",
                    "description": "the order of each rater's fold items: the allocation's seeded "
                    "shuffle, or the newest model's least certain images first (refreshed after "
                    "each training run; golden and already shown items keep their places)",
                    "properties": {"order": {"enum": list(QUEUE_ORDERS)}},
                },
                "cases": {
                    "type": "object",
                    "description": "view: show a case's photos together; unit: what one answer "
                    "labels, 'image' or 'case' (per case only where the protocol allows it, and "
                    "only before labeling starts); show: manifest columns raters read",
                    "properties": {
                        "view": {"type": "boolean"},
                        "unit": {"enum": list(CASE_UNITS)},
                        "show": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                    },
                },
                "suggestions_model_id": {
                    "type": ["string", "null"],
                    "description": "pre-labeling: every rater sees this model's stored suggestions "
                    "on every item; null: off",
                },
            },
        },
        "confirm_migration": {
            "type": "boolean",
            "description": "needed once labels exist to change the scale or the non-graded answers",
        },
        "grade_mapping": {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "description": "old grade -> new grade for every grade in use (a scale change once "
            "labels exist)",
        },
    },
}
PROJECT_PATHS: dict[str, dict] = {
    "/api/v1/projects/{project_id}": {
        "get": _op("A project with its settings (leads, admins)", params=[_path_id("project_id")]),
        "patch": _op(
            "Change a project's settings (validated, audited; 409 when labels exist and the "
            "change needs confirm_migration)",
            params=[_path_id("project_id")],
            body=_SETTINGS_BODY,
        ),
    },
    "/api/v1/projects/{project_id}/members": {
        "get": _op(
            "The project's leads and raters (leads, admins)", params=[_path_id("project_id")]
        ),
        "post": _op(
            "Add a lead or rater by e-mail (unknown addresses are invited; a rater added after "
            "the allocation gets a queue)",
            ok=201,
            params=[_path_id("project_id")],
            body=_MEMBER_BODY,
        ),
        "delete": _op(
            "Remove a lead or rater; a rater needs confirm: true (labels stay, unlabeled work "
            "moves). The fields go in a JSON body or, for clients that send none, in the query",
            params=[
                _path_id("project_id"),
                {"name": "email", "in": "query", "schema": {"type": "string"}},
                {"name": "role", "in": "query", "schema": {"enum": ["lead", "rater"]}},
                {"name": "confirm", "in": "query", "schema": {"enum": ["true", "false"]}},
            ],
            body={
                **_MEMBER_BODY,
                "properties": {
                    "email": {"type": "string"},
                    "role": {"enum": ["lead", "rater"]},
                    "confirm": {"type": "boolean"},
                },
            },
        ),
    },
}

PATHS: dict[str, dict] = {
    "/api/v1/projects": {
        "get": _op("Projects the caller may see"),
        "post": _op(
            "Create a project (leads, admins)",
            ok=201,
            body={
                "type": "object",
                "required": ["name", "protocol"],
                "properties": {
                    "name": {"type": "string"},
                    "protocol": {"enum": protocols.names()},
                },
            },
        ),
    },
    "/api/v1/projects/{project_id}/images": {
        "post": _import_op(),
    },
    "/api/v1/import-jobs/{job_id}": {
        "get": _op(
            "A large upload's import (202 from the image import): status (queued, running, "
            "succeeded, failed), progress (done of total files), the per-file result once done "
            "(imported, duplicates, rejected with the reason) or the error in words",
            params=[_path_id("job_id")],
        ),
    },
    **PROJECT_PATHS,
    **LABELING_PATHS,
    **CASE_PATHS,
    **ALLOCATION_PATHS,
    **REPORT_PATHS,
    **GUIDELINE_PATHS,
    **TRAINING_PATHS,
    **WEBHOOK_PATHS,
    **ASSIST_PATHS,
    "/api/v1/openapi.json": {"get": _op("This document")},
}


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "labeler API", "version": "1"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": PATHS,
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
