"""Training runs: start one, read its state, find a model's run, read a model's report.

Runs are executed by ``labeler.training.worker`` (a background process the pages, the API and the
CLI start) or in the foreground by ``labeler ml train --wait``; both call ``execute_run``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import protocols
from ..audit.services import record_event
from ..auth.models import User
from ..errors import Conflict, NotFound, ValidationError
from ..ml.artifacts import MODEL_ID
from ..ml.config import BACKBONE_BLOCKS
from ..ml.errors import ModelNotFound
from ..projects.models import Project
from ..projects.settings import read_settings
from ..reports.services import golden_panel, project_agreement
from ..validation import MAX_SEED, clean_int
from .model_store import model_folder
from .models import ModelKind, RunStatus, TrainingRun
from .paths import cache_dir, models_dir, run_dir  # noqa: F401  (re-exported: callers import them here)
from .processes import dead_worker_error, mark_dead_runs

MAX_EPOCHS = 1000


def start_run(
    session: Session,
    actor: User | None,
    project: Project,
    *,
    kind: str | None = None,
    seed: Any = None,
    epochs: Any = None,
    fine_tune_blocks: Any = None,
) -> TrainingRun:
    """Queue a training run of the project's model kind (one run in flight per project).

    fine_tune_blocks (quality models only, 0 to the backbone's block count): also train the
    backbone's last N blocks; the worker trains them on its GPU or fails the run saying it has none.
    """
    protocol = protocols.get(project.protocol)
    kinds = " or ".join(f"'{k.value}'" for k in ModelKind)
    if kind is not None and not isinstance(kind, str):
        raise ValidationError(f"kind must be {kinds}")
    if protocol.model_kind is None:
        raise ValidationError(
            f"{protocol.title} projects have no bundled model to train: their fused answers "
            "feed the exports and the fairness breakdowns"
        )
    kind = (kind or protocol.model_kind).strip().lower()
    if kind not in {k.value for k in ModelKind}:
        raise ValidationError(f"kind must be {kinds}")
    if kind != protocol.model_kind:
        raise ValidationError(
            f"a {protocol.title.lower()} project trains {protocol.model_kind} models, "
            f"not {kind} models"
        )
    seed = clean_int(seed, "seed", lo=0, hi=MAX_SEED, default=0, from_text=True)
    epochs = clean_int(epochs, "epochs", lo=1, hi=MAX_EPOCHS, from_text=True)
    fine_tune_blocks = _fine_tune_blocks(fine_tune_blocks, ModelKind(kind))
    busy = session.scalar(
        select(TrainingRun.id).where(
            TrainingRun.project_id == project.id,
            TrainingRun.status.in_([RunStatus.queued, RunStatus.running]),
        )
    )
    if busy is not None:
        mark_dead_runs(session, [session.get(TrainingRun, busy)])
        if session.get(TrainingRun, busy).status in (RunStatus.queued, RunStatus.running):
            raise Conflict(
                f"training run {busy} of this project is still in progress",
                code="run_in_progress",
                run_id=busy,
            )
    run = TrainingRun(
        project_id=project.id,
        kind=ModelKind(kind),
        status=RunStatus.queued,
        seed=seed,
        epochs=epochs,
        fine_tune_blocks=fine_tune_blocks,
        done=0,
        total=0,
        created_by_id=actor.id if actor else None,
    )
    session.add(run)
    session.flush()
    record_event(
        session,
        actor,
        "training.start",
        "training_run",
        run.id,
        project_id=project.id,
        kind=kind,
        seed=seed,
        epochs=epochs,
        fine_tune_blocks=fine_tune_blocks,
    )
    return run


def _fine_tune_blocks(value: Any, kind: ModelKind) -> int:
    """How many backbone blocks a run fine-tunes: 0..BACKBONE_BLOCKS, and 0 for a severity model."""
    blocks = clean_int(
        value,
        "The number of blocks to fine-tune (fine_tune_blocks)",
        lo=0,
        hi=BACKBONE_BLOCKS,
        default=0,
        from_text=True,
    )
    if blocks and kind is not ModelKind.quality:
        raise ValidationError(
            "Fine-tuning backbone blocks is built for the quality model only; train the "
            f"{kind.value} model with 0 fine-tuned blocks."
        )
    return blocks


def get_run(session: Session, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound(f"no training run with id {run_id}")
    return run


def project_runs(session: Session, project: Project) -> list[TrainingRun]:
    """The project's runs, newest first."""
    return list(
        session.scalars(
            select(TrainingRun)
            .where(TrainingRun.project_id == project.id)
            .order_by(TrainingRun.id.desc())
        )
    )


def run_for_model(session: Session, model_id: str) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).where(TrainingRun.model_id == model_id))


def rater_figures(session: Session, project: Project) -> dict[str, Any] | None:
    """The raters' own golden-set figures that set the "expert level" bar (None without enough labels).

    "panel" holds their golden labels, for the paired bootstrap of the model against them.
    """
    figures = project_agreement(session, project, "golden")
    if protocols.get(project.protocol).has_classes:
        macro = figures.get("macro_f1") or {}
        if macro.get("mean") is None:
            return None
        return {
            "macro_f1_mean": float(macro["mean"]),
            "macro_f1_std": float(macro.get("std") or 0.0),
            "panel": golden_panel(session, project),
        }
    bar = figures.get("bar")
    return None if bar is None else {"bar": float(bar), "panel": golden_panel(session, project)}


def run_dict(run: TrainingRun) -> dict[str, Any]:
    """A run as pages and the API show it: a run whose worker died shows as failed (not written here)."""
    evaluation = (run.metrics or {}).get("evaluation") or {}
    dead = dead_worker_error(run)
    return {
        "id": run.id,
        "project_id": run.project_id,
        "kind": run.kind.value,
        "status": RunStatus.failed.value if dead else run.status.value,
        "stage": run.stage,
        "done": run.done,
        "total": run.total,
        "seed": run.seed,
        "epochs": run.epochs,
        "fine_tune_blocks": run.fine_tune_blocks,
        "model_id": run.model_id,
        "error": dead or run.error,
        "created_by_id": run.created_by_id,
        "created_at": run.created_at.isoformat(),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "verdict": evaluation.get("verdict"),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def latest_evaluation(folder: Path) -> dict[str, Any] | None:
    """The newest evaluation-*.json that evaluate() wrote into a model folder."""
    files = sorted(folder.glob("evaluation-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in files:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    return None


def model_report(folder: Path, run: TrainingRun | None) -> dict[str, Any]:
    """Everything the report page shows: model metadata, validation and golden-set figures, verdict."""

    def read(name: str) -> Any:
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    meta = read("model.json") or {}
    evaluation = latest_evaluation(folder) or (
        (run.metrics or {}).get("evaluation") if run else None
    )
    return {
        "model": meta,
        "config": read("config.json"),
        "thresholds": read("thresholds.json"),
        "validation": (read("metrics.json") or {}).get("validation"),
        "evaluation": evaluation,
        "evaluation_note": (run.metrics or {}).get("evaluation_note") if run else None,
        "run": run_dict(run) if run else None,
    }


def project_models(
    session: Session, config: Mapping[str, Any], project: Project
) -> list[dict[str, Any]]:
    """The project's trained models (from its succeeded runs whose folder still exists), newest first."""
    out = []
    prescreen = read_settings(project.settings).prescreen_model_id
    for run in project_runs(session, project):
        if (
            run.status is not RunStatus.succeeded
            or not run.model_id
            or not MODEL_ID.match(run.model_id)
        ):
            continue
        try:  # on a shared store, a model this machine lacks is fetched first
            folder = model_folder(config, run.model_id)
        except ModelNotFound:
            continue
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        out.append(
            {
                "id": run.model_id,
                "kind": run.kind.value,
                "run_id": run.id,
                "created": meta.get("created"),
                "size_bytes": meta.get("size_bytes"),
                "size_mb": meta.get("size_mb"),
                "verdict": (run.metrics or {}).get("evaluation", {}).get("verdict")
                if run.metrics
                else None,
                "prescreen": prescreen == run.model_id,
            }
        )
    return out


def set_prescreen_model(
    session: Session,
    actor: User | None,
    project: Project,
    model_id: str | None,
    config: Mapping[str, Any],
) -> None:
    """Use one of the project's quality models to prescreen imports (None or "" turns it off)."""
    model_id = (model_id or "").strip() or None
    if model_id is not None:
        protocol = protocols.get(project.protocol)
        if "prescreen_model_id" not in protocol.settings_keys:
            raise ValidationError(
                "prescreen on import uses a quality model: only quality projects have one"
            )
        if model_id not in {
            m["id"]
            for m in project_models(session, config, project)
            if m["kind"] == protocol.model_kind
        }:
            raise ValidationError(f"{model_id!r} is not a trained quality model of this project")
    settings = dict(project.settings or {})
    settings["prescreen_model_id"] = model_id
    project.settings = settings
    session.flush()
    record_event(
        session,
        actor,
        "training.prescreen",
        "project",
        project.id,
        project_id=project.id,
        model_id=model_id,
    )
