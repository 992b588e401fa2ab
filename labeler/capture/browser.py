"""What a page needs to run the quality check in the browser: the runtime's file, the page's
Content-Security-Policy, and the URL of the project's check settings (capture and upload pages)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Response, current_app, url_for

from ..config import content_security_policy
from ..projects.models import Project

# onnxruntime-web from npm (static/vendor/package.json): the WASM-only ES module, which loads
# ort-wasm-simd-threaded.{mjs,wasm} from its own folder
ORT_MODULE = "vendor/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs"


def wasm_policy(cfg: Mapping[str, Any]) -> str:
    """The app's CSP with 'wasm-unsafe-eval' added to script-src: it allows compiling WebAssembly
    (onnxruntime-web) and nothing else (no eval of text). Only the pages that run the model."""
    policy = content_security_policy(cfg)
    wasm = policy.replace("script-src 'self';", "script-src 'self' 'wasm-unsafe-eval';", 1)
    if (
        wasm == policy
    ):  # the app's policy changed shape: fail loudly rather than serve a broken page
        raise RuntimeError(f"no script-src 'self' in the app's CSP: {policy}")
    return wasm


def with_wasm(resp: Response | str) -> Response:
    """A page that runs the quality model: its CSP also allows compiling WebAssembly."""
    resp = current_app.make_response(resp)
    resp.headers["Content-Security-Policy"] = wasm_policy(current_app.config)
    return resp


def check_url(project: Project) -> str:
    """Where the page's script reads the project's check settings (capture.check_settings)."""
    return url_for("capture.check_settings", project_id=project.id)


def runtime_installed() -> bool:
    static = current_app.static_folder
    return bool(static) and (Path(static) / ORT_MODULE).is_file()
