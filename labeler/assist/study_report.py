"""A reader study's report: per rater and overall, accuracy against the fused golden reference
unassisted vs assisted, the paired difference with a bootstrap interval, and how answers moved
toward or away from the model's (labeler/assist/report.py computes; this module reads the data).

The reference is the golden set's fused reference of docs/domain.md, from the raters' normal labels:
the fused class (plurality with the project's tie policy and adjudications, or Dawid-Skene) for
quality, the consensus mean grade for severity. Images without a reference are left out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import metrics, protocols
from ..auth.models import User
from ..labeling.models import Label
from ..metrics.bootstrap import DEFAULT_RESAMPLES
from ..projects.models import Project
from ..protocols.quality import QUALITY_DECISIONS
from ..reports.figures import fuse, project_scale
from ..reports.matrix import load_label_matrix
from ..reports.panel import reference_fusion
from .models import ReaderStudy, StudyReading, Suggestion
from .report import paired_accuracy, switches
from .studies import assisted_first, rater_phase, study_dict


def golden_reference(session: Session, project: Project) -> tuple[dict[int, float], dict[int, Any]]:
    """Per golden image id: the reference as a number (class code or mean grade) and as an answer
    (class code, or the consensus grade's scale value) for telling whether the model was right."""
    m = load_label_matrix(session, project)
    settings = project.settings or {}
    rows = np.flatnonzero(m.golden)
    value: dict[int, float] = {}
    answer: dict[int, Any] = {}
    if protocols.get(project.protocol).has_classes:
        fused = reference_fusion(m, settings, fuse(m, settings)).fused
        for i in rows:
            if fused[i] >= 0:
                value[int(m.image_ids[i])] = answer[int(m.image_ids[i])] = int(fused[i])
    else:
        cons = metrics.severity_consensus(m.grades, project_scale(settings))
        for i in rows:
            if cons.count[i] > 0:
                value[int(m.image_ids[i])] = float(cons.mean[i])
                answer[int(m.image_ids[i])] = float(cons.value[i])
    return value, answer


def _answer(reading_or_suggestion: Any, classes: bool) -> float | None:
    """A reading's answer (or a stored suggestion's) as a number: class code, or grade."""
    if classes:
        decision = getattr(reading_or_suggestion, "decision", None)
        if decision is None and isinstance(reading_or_suggestion, dict):
            decision = reading_or_suggestion.get("class")
        return QUALITY_DECISIONS.index(decision) if decision in QUALITY_DECISIONS else None
    grade = getattr(reading_or_suggestion, "grade", None)
    if grade is None and isinstance(reading_or_suggestion, dict):
        grade = reading_or_suggestion.get("grade")
    return float(grade) if grade is not None else None


def study_report(
    session: Session, study: ReaderStudy, *, resamples: int = DEFAULT_RESAMPLES
) -> dict[str, Any]:
    """The report's JSON (the page renders the same dict)."""
    project = session.get(Project, study.project_id)
    classes = protocols.get(project.protocol).has_classes
    severity = not classes
    ref_value, ref_answer = golden_reference(session, project)
    image_index = {image_id: k for k, image_id in enumerate(sorted(ref_value))}
    model = {
        s.image_id: _answer(s.answer, classes)
        for s in session.scalars(
            select(Suggestion).where(
                Suggestion.model_id == study.model_id,
                Suggestion.image_id.in_(list(ref_value) or [-1]),
            )
        )
        if s.answer
    }
    pairs: dict[int, dict[int, dict[bool, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in session.scalars(
        select(StudyReading).where(
            StudyReading.study_id == study.id,
            StudyReading.answered_at.is_not(None),
            StudyReading.image_id.in_(list(ref_value) or [-1]),
        )
    ):
        value = _answer(r, classes)
        if value is not None:
            pairs[r.rater_id][r.image_id][r.assisted] = value
    names = dict(
        session.execute(select(User.id, User.name).where(User.id.in_(list(pairs) or [-1]))).all()
    )
    rater_ids = sorted(
        {
            r
            for (r,) in session.execute(
                select(StudyReading.rater_id).where(StudyReading.study_id == study.id).distinct()
            )
        }
    )

    def section(rows: list[tuple[int, int, float, float]]) -> dict[str, Any]:
        """rows: (rater, image, unassisted, assisted) paired readings."""
        img = np.array([image_index[i] for _, i, _, _ in rows], dtype=np.int64)
        truth = np.array([ref_value[i] for _, i, _, _ in rows], dtype=float)
        un = np.array([u for *_, u, _ in rows], dtype=float)
        asst = np.array([a for *_, a in rows], dtype=float)
        acc = paired_accuracy(
            truth, un, asst, img, len(image_index), severity=severity, resamples=resamples
        )
        with_model = [k for k, (_, i, _, _) in enumerate(rows) if model.get(i) is not None]
        sw = switches(
            np.array([ref_answer[rows[k][1]] for k in with_model], dtype=float),
            np.array([model[rows[k][1]] for k in with_model], dtype=float),
            un[with_model],
            asst[with_model],
        )
        return {"accuracy": acc.as_dict(), "switches": sw.as_dict()}

    everyone: list[tuple[int, int, float, float]] = []
    readers = []
    for rater_id in rater_ids:
        rows = [
            (rater_id, image_id, both[False], both[True])
            for image_id, both in sorted(pairs.get(rater_id, {}).items())
            if False in both and True in both
        ]
        everyone += rows
        readers.append(
            {
                "rater_id": rater_id,
                "name": names.get(rater_id) or f"rater {rater_id}",
                "assisted_phase": 1 if assisted_first(study.seed, rater_id) else 2,
                "progress": rater_phase(session, study, rater_id).as_dict(),
                **section(rows),
            }
        )
    assisted_reference = session.scalar(
        select(Label.id)
        .where(
            Label.project_id == project.id,
            Label.image_id.in_(list(ref_value) or [-1]),
            Label.assisted.is_(True),
        )
        .limit(1)
    )
    return {
        "study": study_dict(study),
        "metric": "rmse" if severity else "macro_f1",
        "metric_name": "RMSE (lower is better)" if severity else "macro F1 (higher is better)",
        "reference": {
            "images": len(ref_value),
            "what": "the consensus mean grade of the raters' golden labels"
            if severity
            else "the fused class of the raters' golden labels (the project's fusion method)",
            # pre-labeling: the reference itself then rests on labels made with suggestions
            "includes_assisted_labels": assisted_reference is not None,
        },
        "difference": "assisted minus unassisted, paired by rater and image; percentile bootstrap "
        "over golden images",
        "readers": readers,
        "overall": section(everyone),
    }
