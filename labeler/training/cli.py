"""`labeler ml ...`: train, evaluate, predict, list."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from .. import ml
from ..db import CommandSession, database
from ..errors import LabelerError
from ..images.storage import app_storage
from ..projects.models import Project
from ..projects.services import find_project
from ..projects.settings import read_settings
from ..reports.export import training_manifest
from .model_store import for_manifest, is_shared, model_folder, publish_model
from .models import ModelKind, RunStatus, TrainingRun
from .prescreen import loaded_model
from .processes import mark_dead_runs
from .services import (
    latest_evaluation,
    models_dir,
    rater_figures,
    run_for_model,
    start_run,
)
from .simulations import run_simulation
from .worker import execute_run, launch_run

ml_cli = AppGroup("ml", help="Quality and severity models: train, evaluate, predict, list.")


@ml_cli.command("train")
@click.argument("project")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in ModelKind]),
    default=None,
    help="Model kind (default: the model of the project's protocol).",
)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True)
@click.option(
    "--epochs", type=click.IntRange(1, 1000), default=None, help="Default: the model config's."
)
@click.option(
    "--wait",
    is_flag=True,
    help="Train here in the foreground with a progress bar "
    "(default: start a background worker and return).",
)
@click.option(
    "--fine-tune-blocks",
    type=click.IntRange(0, 16),
    default=0,
    show_default=True,
    help="Quality model: also train the backbone's last N blocks (needs a GPU on the worker).",
)
@click.option(
    "--fine-tune-on-cpu",
    is_flag=True,
    help="With --wait: allow --fine-tune-blocks without a GPU (slow: small data sets and tests only).",
)
@with_appcontext
def ml_train(
    project: str,
    kind: str | None,
    seed: int,
    epochs: int | None,
    wait: bool,
    fine_tune_blocks: int,
    fine_tune_on_cpu: bool,
) -> None:
    """Train a model from PROJECT's labels (id or name); evaluate it on the golden set."""
    config = current_app.config
    if fine_tune_on_cpu and not wait:
        # a background worker has its own settings: it fine-tunes on its GPU or fails the run
        raise click.UsageError("--fine-tune-on-cpu applies to a run trained here: add --wait")
    if fine_tune_on_cpu:
        config = {**config, "ML_FINE_TUNE_ON_CPU": True}
    with CommandSession() as s:
        proj = find_project(s, project)
        options = {
            "kind": kind,
            "seed": seed,
            "epochs": epochs,
            "fine_tune_blocks": fine_tune_blocks,
        }
        if wait:  # trained below, in this process
            run = start_run(s, None, proj, **options)
        else:
            config = {**config, "ML_SPAWN_WORKER": True}
            run = launch_run(s, config, None, proj, **options, checkpoint=s.commit)
        run_id, pid = run.id, run.pid
    click.echo(f"training run {run_id} queued")
    if not wait:
        click.echo(
            f"worker started (pid {pid}); log in {Path(config['ML_DIR']) / 'runs' / str(run_id)}"
        )
        return
    bars: dict[str, object] = {}

    def echo(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for old in bars.values():
                old.render_finish()
            bar = bars[stage] = click.progressbar(
                length=max(total, 1), label=f"{stage:<9}", file=sys.stderr, show_pos=True
            )
        bar.pos = 0
        bar.update(done)

    run = execute_run(
        database().session_factory,
        config,
        current_app.extensions["labeler_storage"],
        run_id,
        echo=echo,
    )
    for bar in bars.values():
        bar.render_finish()
    if run.error:
        raise click.ClickException(f"training run {run_id} failed: {run.error}")
    click.echo(f"training run {run_id} succeeded: model {run.model_id}")
    _print_evaluation(
        (run.metrics or {}).get("evaluation"), (run.metrics or {}).get("evaluation_note")
    )


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _print_evaluation(ev: dict | None, note: str | None = None) -> None:
    if not ev:
        click.echo(note or "not evaluated")
        return
    f = ev["figures"]
    click.echo(f"golden set: {f['n']} images")
    if ev["kind"] == "quality":
        click.echo(
            f"macro F1 {_fmt(f['macro_f1'])}  accuracy {_fmt(f['accuracy'])}  "
            f"explanation macro F1 {_fmt(f['explanation_macro_f1'])}"
        )
        for name, c in {**f["per_class"], **f["per_explanation"]}.items():
            click.echo(
                f"  {name:<16} recall {_fmt(c['recall'])}  specificity {_fmt(c['specificity'])}  "
                f"F1 {_fmt(c['f1'])}  support {c['support']}"
            )
    else:
        click.echo(
            f"RMSE {_fmt(f['rmse'])}  Pearson r {_fmt(f['pearson_r'])}  MAE {_fmt(f['mae'])}"
        )
    v = ev.get("verdict")
    if v is None and ev.get("verdict_withheld"):
        click.echo(f"no verdict: {ev['verdict_withheld']}")
    elif v is None:
        click.echo(note or "no verdict: the raters' own golden-set figures are missing")
    elif ev["kind"] == "quality":
        click.echo(
            f"raters' macro F1 {_fmt(v['rater_macro_f1_mean'])} ± {_fmt(v['rater_macro_f1_std'])}"
        )
        click.echo(f"expert level: {'yes' if v['expert_level'] else 'no'} ({v['rule']})")
    else:
        click.echo(f"raters' bar (worst rater RMSE) {_fmt(v['bar'])}")
        click.echo(f"expert level: {'yes' if v['expert_level'] else 'no'} ({v['rule']})")
    if v is not None and v.get("verdict"):
        iv, boot = v["difference_interval"], v.get("bootstrap") or {}
        click.echo(
            f"verdict: {v['verdict']} (model - bar {_fmt(v['difference'])}, 95% interval "
            f"[{_fmt(iv['low'])}, {_fmt(iv['high'])}], paired bootstrap of "
            f"{boot.get('resamples')} resamples, seed {boot.get('seed')})"
        )


@ml_cli.command("evaluate")
@click.argument("model_ids", nargs=-1, required=True)
@click.option(
    "--project",
    default=None,
    help="Project whose golden set to use (default: the one it was trained on).",
)
@with_appcontext
def ml_evaluate(model_ids: tuple[str, ...], project: str | None) -> None:
    """Evaluate MODEL(s) on a project's golden set next to the raters' figures; save the report in each folder.

    Several models (e.g. the same training with different seeds) are also summarised as mean ± std, as in
    the ImageQX paper, with the verdict taken on the mean.
    """
    config = current_app.config
    with CommandSession() as s:
        folders = [model_folder(config, model_id) for model_id in model_ids]
        if project is not None:
            proj = find_project(s, project)
        else:
            run = run_for_model(s, model_ids[0])
            if run is None:
                raise click.ClickException(
                    f"model {model_ids[0]} has no training run here: name a project with --project"
                )
            proj = s.get(Project, run.project_id)
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "manifest.jsonl"
            with manifest.open("w", encoding="utf-8") as fh:
                for chunk in training_manifest(s, proj, for_manifest(app_storage())):
                    fh.write(chunk)
            figures = rater_figures(s, proj)
            combined = ml.evaluate_runs(
                folders, manifest, figures, min_images=read_settings(proj.settings).min_eval_images
            )
    for model_id, folder, result in zip(model_ids, folders, combined["runs"], strict=True):
        click.echo(f"model {model_id} on the golden set of project {proj.id} ({proj.name})")
        _print_evaluation(result)
        click.echo(f"report: {folder / ('evaluation-' + result['manifest_sha256'][:12] + '.json')}")
    if is_shared(app_storage()):  # the new evaluation reports reach the shared store too
        for folder in folders:
            publish_model(app_storage(), folder)
    if len(folders) > 1:
        _print_summary(combined)


def _print_summary(combined: dict) -> None:
    """Mean ± population std over several models' headline figures, and the verdict on the mean."""
    summary, verdict = combined["summary"], combined["verdict"]
    click.echo(f"over {combined['seeds']} models (mean ± std):")
    for key in ("macro_f1", "accuracy", "rmse", "pearson_r"):
        if isinstance(summary.get(key), dict) and "mean" in summary[key]:
            click.echo(f"  {key}: {summary[key]['mean']:.3f} ± {summary[key]['std']:.3f}")
    if verdict:
        click.echo(
            f"expert level on the mean: {'yes' if verdict['expert_level'] else 'no'} ({verdict['rule']})"
        )
    elif combined.get("verdict_withheld"):
        click.echo(f"no verdict on the mean: {combined['verdict_withheld']}")


@ml_cli.command("predict")
@click.argument("model_id")
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--cams", is_flag=True, help="Include the Grad-CAM maps (quality models).")
@with_appcontext
def ml_predict(model_id: str, images: tuple[Path, ...], cams: bool) -> None:
    """Predict with MODEL on IMAGE files; prints one JSON object per image."""
    try:
        model = loaded_model(model_folder(current_app.config, model_id))
    except LabelerError as exc:
        raise click.ClickException(exc.message) from exc
    failed = 0
    for path in images:
        try:
            out = {"image": str(path), **ml.predict(model, path, cams=cams)}
        except LabelerError as exc:
            out, failed = {"image": str(path), "error": exc.message}, failed + 1
        click.echo(json.dumps(out))
    if failed:
        sys.exit(1)


@ml_cli.command("simulate-active")
@click.argument("project")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**31 - 1))
@click.option("--step", default=20, show_default=True, type=click.IntRange(5, 500))
@with_appcontext
def ml_simulate_active(project: str, seed: int, step: int) -> None:
    """Simulate labeling PROJECT's fold images in random order and in the model's most-uncertain-first
    order (its own labels; scored on its golden set) and store the learning curve for the Models page."""
    storage = app_storage()
    with CommandSession() as s:
        proj = find_project(s, project)
        result = run_simulation(s, current_app.config, storage, proj, seed=seed, step=step)
    need = result["labels_to_target"]
    click.echo(
        f"{result['pool']} fold images, {result['held_out']} golden; macro F1 with every label "
        f"{result['random_f1'][-1]:.3f}, target {result['target_f1']:.3f}: reached with "
        f"{need['uncertainty'] or 'never'} labels in uncertainty order, "
        f"{need['random'] or 'never'} in random order"
    )


@ml_cli.command("list")
@with_appcontext
def ml_list() -> None:
    """List trained models: id, kind, size, project, and the verdict of their evaluation."""
    with CommandSession() as s:
        models = ml.list_models(models_dir(current_app.config))
        if not models:
            click.echo("no trained models")
        for m in models:
            run = run_for_model(s, m.id)
            ev = latest_evaluation(Path(m.path)) or {}
            verdict = ev.get("verdict")
            expert = "—" if not verdict else ("yes" if verdict["expert_level"] else "no")
            where = f"project {run.project_id} run {run.id}" if run else "no run"
            click.echo(
                f"{m.id}\t{m.kind}\t{m.size_bytes / 1e6:.1f} MB\t{where}\texpert level: {expert}"
            )


@ml_cli.command("reap")
@with_appcontext
def ml_reap() -> None:
    """Record runs in flight whose worker process died as failed (pages show them failed already)."""
    with CommandSession() as s:
        runs = list(
            s.scalars(
                select(TrainingRun).where(
                    TrainingRun.status.in_([RunStatus.queued, RunStatus.running])
                )
            )
        )
        mark_dead_runs(s, runs)
        failed = [r.id for r in runs if r.status is RunStatus.failed]
    click.echo(f"marked failed: {', '.join(map(str, failed))}" if failed else "no dead runs")


@ml_cli.command("work")
@click.argument("run_id", type=int)
@with_appcontext
def ml_work(run_id: int) -> None:
    """Execute queued training run RUN_ID here (what the background worker does; for LABELER_ML_SPAWN_WORKER=0)."""
    try:
        run = execute_run(
            database().session_factory,
            current_app.config,
            current_app.extensions["labeler_storage"],
            run_id,
        )
    except LabelerError as exc:
        raise click.ClickException(exc.message) from exc
    if run.error:
        raise click.ClickException(f"training run {run_id} failed: {run.error}")
    click.echo(f"training run {run_id} succeeded: model {run.model_id}")
