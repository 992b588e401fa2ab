"""The OpenAPI document for /api/v1 (a test checks that every API route is described)."""

from __future__ import annotations

from flask import jsonify

from . import bp

ERROR = {"$ref": "#/components/schemas/Error"}


def _op(summary: str, *, body: dict | None = None, ok: int = 200, params: list | None = None,
        multipart: bool = False) -> dict:
    op: dict = {
        "summary": summary,
        "responses": {
            str(ok): {"description": "success"},
            "400": {"description": "bad request", "content": {"application/json": {"schema": ERROR}}},
            "401": {"description": "not signed in", "content": {"application/json": {"schema": ERROR}}},
            "403": {"description": "not allowed", "content": {"application/json": {"schema": ERROR}}},
            "404": {"description": "not found", "content": {"application/json": {"schema": ERROR}}},
            "422": {"description": "invalid", "content": {"application/json": {"schema": ERROR}}},
        },
    }
    if params:
        op["parameters"] = params
    if body is not None:
        ctype = "multipart/form-data" if multipart else "application/json"
        op["requestBody"] = {"required": True, "content": {ctype: {"schema": body}}}
    return op


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


PATHS: dict[str, dict] = {
    "/api/v1/projects": {
        "get": _op("Projects the caller may see"),
        "post": _op("Create a project (leads, admins)", ok=201, body={
            "type": "object", "required": ["name", "protocol"],
            "properties": {"name": {"type": "string"}, "protocol": {"enum": ["quality", "severity"]}}}),
    },
    "/api/v1/projects/{project_id}/images": {
        "post": _op("Import images: multipart field 'files', one or many, or a .zip", ok=201,
                    params=[_path_id("project_id")], multipart=True,
                    body={"type": "object", "properties": {"files": {"type": "array", "items": {
                        "type": "string", "format": "binary"}}}}),
    },
    "/api/v1/openapi.json": {"get": _op("This document")},
}


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "labeler API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "session"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}}},
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": PATHS,
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
