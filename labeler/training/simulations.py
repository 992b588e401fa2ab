"""The learning curve of a project (issue 16): the active-learning simulation on its own labels,
computed outside any request (``labeler ml simulate-active``) and stored in the blob store, where
the Models page of any app server reads it.

Stored as ``simulations/project-<id>.json``: macro F1 on the golden images against the number of
fold labels used, in random order and in most-uncertain-first order (labeler/ml/active.py), the
target (95% of the macro F1 with every label) and the labels each order needed to reach it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from .. import ml
from ..images.storage import Storage
from ..projects.models import Project
from ..reports.export import training_manifest
from .model_store import for_manifest
from .paths import cache_dir

PREFIX = "simulations"


def simulation_key(project_id: int) -> str:
    return f"{PREFIX}/project-{int(project_id)}.json"


def run_simulation(
    session: Session,
    config: Mapping[str, Any],
    storage: Storage,
    project: Project,
    *,
    seed: int = 0,
    step: int = 20,
) -> dict[str, Any]:
    """Simulate the label orders on the project's labels (features from the cache) and store the
    result; returns it. NotEnoughData when the project has too few labels for a curve."""
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        with manifest.open("w", encoding="utf-8") as fh:
            for chunk in training_manifest(session, project, for_manifest(storage)):
                fh.write(chunk)
        result = ml.simulate_from_manifest(manifest, cache_dir(config), seed=seed, step=step)
    result["project_id"] = project.id
    result["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    storage.put(simulation_key(project.id), json.dumps(result).encode())
    return result


def read_simulation(storage: Storage, project_id: int) -> dict[str, Any] | None:
    """The project's stored simulation, or None."""
    try:
        with storage.open(simulation_key(project_id)) as fh:
            data = json.loads(fh.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("sizes") else None


def curve_points(sim: Mapping[str, Any], width: int = 640, height: int = 300) -> dict[str, Any]:
    """Geometry of the learning-curve chart (SVG user units): both curves as polyline points, the
    target line, the axes' ticks. Macro F1 from 0 to 1 upwards; labels used from 0 to the pool."""
    left, right, top, bottom = 56, 16, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    sizes = [int(n) for n in sim["sizes"]]
    most = max(sizes[-1], 1)

    def x(n: float) -> float:
        return round(left + plot_w * n / most, 1)

    def y(f: float) -> float:
        return round(top + plot_h * (1 - max(0.0, min(1.0, float(f)))), 1)

    def line(values) -> str:
        return " ".join(f"{x(n)},{y(f)}" for n, f in zip(sizes, values, strict=True))

    step = max(1, round(most / 6 / 10) * 10) if most > 30 else max(1, most // 3)
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "bottom": top + plot_h,
        "right": left + plot_w,
        "random": line(sim["random_f1"]),
        "uncertainty": line(sim["uncertainty_f1"]),
        "target_y": y(sim["target_f1"]),
        "x_ticks": [(x(n), n) for n in range(0, most + 1, step)],
        "y_ticks": [(y(f / 10), f / 10) for f in range(0, 11, 2)],
        "points": {
            "random": [(x(n), y(f)) for n, f in zip(sizes, sim["random_f1"], strict=True)],
            "uncertainty": [
                (x(n), y(f)) for n, f in zip(sizes, sim["uncertainty_f1"], strict=True)
            ],
        },
    }
