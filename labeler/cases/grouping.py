"""Reading labels by the project's unit: in a per-case project one case is one unit everywhere a
label is counted (fusion, agreement, exports, the training manifest; docs/domain.md section 11).

A per-case answer is stored as one label per photo with the same answer (labeler/cases/services.py),
so a case reads as the answer of each rater on it: their label of the first photo of the case that
they labeled. The collapse itself is pure (arrays in, arrays out); the two loaders read the project.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..images.models import Image
from ..projects.models import Project
from ..reports.matrix import LabelMatrix, load_label_matrix
from .units import per_case


def case_groups(case_ids: np.ndarray | None, n: int) -> list[np.ndarray]:
    """Row indices of each unit, in order of each unit's first row: images sharing a case id
    together, an image without one alone."""
    if case_ids is None:
        return [np.array([i]) for i in range(n)]
    groups: dict[Any, list[int]] = {}
    for i, case in enumerate(case_ids):
        key = ("image", i) if case is None or case == "" else ("case", case)
        groups.setdefault(key, []).append(i)
    return [np.array(rows) for rows in groups.values()]


def collapse_to_cases(m: LabelMatrix) -> tuple[LabelMatrix, list[np.ndarray]]:
    """The matrix with one row per case, and each row's image ids.

    Per rater, a case's values are those of the first photo (by image id) the rater labeled; a case
    is golden (or flagged) when its photos are; its metadata is its first photo's.
    """
    groups = case_groups(m.case_ids, m.image_ids.size)
    r = m.rater_ids.size
    first = np.array([g[0] for g in groups], dtype=np.int64)
    pick = np.zeros((len(groups), r), dtype=np.int64)
    for k, g in enumerate(groups):
        pick[k] = g[np.argmax(m.labeled[g], axis=0)] if r else g[:0]
    cols = np.arange(r)

    def per_rater(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[pick, cols]

    def per_row(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[first]

    def any_of(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.array([bool(a[g].any()) for g in groups], dtype=bool)

    collapsed = dataclasses.replace(
        m,
        image_ids=m.image_ids[first],
        golden=any_of(m.golden),
        labeled=per_rater(m.labeled),
        classes=per_rater(m.classes),
        explanations=per_rater(m.explanations),
        grades=per_rater(m.grades),
        non_graded=per_rater(m.non_graded),
        diagnosis=per_rater(m.diagnosis),
        adjudication=per_row(m.adjudication),
        case_ids=per_row(m.case_ids),
        fitzpatrick=per_row(m.fitzpatrick),
        body_site=per_row(m.body_site),
        flagged=any_of(m.flagged),
        skin_types=per_rater(m.skin_types),
    )
    return collapsed, [m.image_ids[g] for g in groups]


def load_unit_matrix(
    session: Session, project: Project, assisted: bool | None = None
) -> tuple[LabelMatrix, list[np.ndarray] | None]:
    """The project's labels with one row per unit: per case (with each row's image ids) or per
    image (None)."""
    m = load_label_matrix(session, project, assisted)
    if not per_case(project.protocol, project.settings):
        return m, None
    return collapse_to_cases(m)


def unit_images(
    images: Iterable[Any], m: LabelMatrix, members: list[np.ndarray] | None
) -> Iterator[tuple[int, Any, list[Any] | None]]:
    """(row, image, the case's images or None) for each row of a unit matrix, given the project's
    images in id order (rows with .id): per image the rows pair up with the images one to one."""
    if members is None:
        for i, img in enumerate(images):
            yield i, img, None
        return
    by_id = {img.id: img for img in images}
    for i, ids in enumerate(members):
        yield i, by_id[int(m.image_ids[i])], [by_id[int(x)] for x in ids]


def case_members(session: Session, project: Project) -> dict[int, list[dict[str, Any]]] | None:
    """Per-case projects: each case's first image id -> the case's images (id, sha256, file name),
    so that a per-case label is exported once; None for per-image projects."""
    if not per_case(project.protocol, project.settings):
        return None
    rows = session.execute(
        select(Image.id, Image.sha256, Image.filename, Image.case_id)
        .where(Image.project_id == project.id)
        .order_by(Image.id)
    ).all()
    out: dict[int, list[dict[str, Any]]] = {}
    first_of: dict[str, int] = {}
    for image_id, sha, filename, case in rows:
        entry = {"image_id": image_id, "sha256": sha, "filename": filename}
        if not case:
            out[image_id] = [entry]
            continue
        head = first_of.setdefault(case, image_id)
        out.setdefault(head, []).append(entry)
    return out


def case_columns(photos: list[Any]) -> dict[str, Any]:
    """The export columns of a per-case label: the unit and the case's photos (rows with id,
    sha256 and filename, or their dicts)."""

    def get(p: Any, key: str) -> Any:
        return p[key] if isinstance(p, dict) else getattr(p, "id" if key == "image_id" else key)

    return {
        "unit": "case",
        "image_ids": [get(p, "image_id") for p in photos],
        "sha256s": [get(p, "sha256") for p in photos],
        "filenames": [get(p, "filename") for p in photos],
    }
