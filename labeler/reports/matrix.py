"""Load a project's current labels into the arrays the pure metrics module works on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import protocols
from ..allocation.models import GoldenImage
from ..auth.models import User
from ..images.models import Image
from ..labeling.flags import flagged_image_ids
from ..labeling.models import Adjudication, Label
from ..projects.models import Project, Protocol
from ..protocols.explanations import EXPLANATION_CODES
from ..protocols.quality import QUALITY_DECISIONS
from ..protocols.severity import GRADED, NON_GRADED

Scope = Literal["all", "golden", "fold", "flagged"]
# "flagged": images some rater marked unsure or left a note on for the leads
SCOPES: tuple[str, ...] = ("all", "golden", "fold", "flagged")


@dataclass(frozen=True)
class LabelMatrix:
    """Current labels of one project as dense arrays (rows: images by id; columns: raters by id)."""

    project_id: int
    protocol: Protocol
    image_ids: np.ndarray  # (n,) int
    golden: np.ndarray  # (n,) bool
    rater_ids: np.ndarray  # (r,) int
    rater_names: list[str]
    labeled: np.ndarray  # (n, r) bool: the rater has a current label
    classes: np.ndarray  # (n, r) int: quality class code (QUALITY_DECISIONS order), -1 missing
    explanations: np.ndarray  # (n, r, E) bool (EXPLANATION_CODES order)
    grades: np.ndarray  # (n, r) float: severity grade, NaN when missing or non-graded
    non_graded: np.ndarray  # (n, r) int: index into NON_GRADED, -1 otherwise
    diagnosis: np.ndarray  # (n, r) int: index into diagnosis_codes, -1 when none
    diagnosis_codes: list[str]
    adjudication: np.ndarray  # (n,) int: adjudicated class code, -1 none
    # Import-manifest metadata per image (None = not recorded): bootstrap cases, breakdowns.
    case_ids: np.ndarray | None = None  # (n,) object: case id or None
    fitzpatrick: np.ndarray | None = None  # (n,) object: raw Fitzpatrick value or None
    body_site: np.ndarray | None = None  # (n,) object: body site or None
    flagged: np.ndarray | None = None  # (n,) bool: a rater marked it unsure or left a note
    # the skin-type second question (reports/skin_types.py): (n, r) int, 1-6, 0 cannot assess,
    # -1 no answer; None when no label of the project carries one
    skin_types: np.ndarray | None = None

    def scope_rows(self, scope: str) -> np.ndarray:
        """Row mask for all / golden / fold / flagged images."""
        if scope == "flagged":
            return self.flagged.copy() if self.flagged is not None else np.zeros_like(self.golden)
        if scope == "golden":
            return self.golden.copy()
        if scope == "fold":
            return ~self.golden
        if scope == "all":
            return np.ones_like(self.golden)
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")


def assisted_clause(assisted: bool | None) -> tuple:
    """WHERE terms keeping only labels made with (True) or without (False) a suggestion; () for all."""
    return () if assisted is None else (Label.assisted.is_(assisted),)


def load_label_matrix(
    session: Session, project: Project, assisted: bool | None = None
) -> LabelMatrix:
    """Read every image and current label of a project (two queries, vectorized fill); ``assisted``
    keeps only the labels made with (True) or without (False) the model's suggestion shown."""
    meta_rows = session.execute(
        select(Image.id, Image.case_id, Image.fitzpatrick, Image.body_site, Image.meta)
        .where(Image.project_id == project.id)
        .order_by(Image.id)
    ).all()
    image_ids = np.array([row[0] for row in meta_rows], dtype=np.int64)
    golden_ids = np.array(
        session.scalars(
            select(GoldenImage.image_id).where(GoldenImage.project_id == project.id)
        ).all(),
        dtype=np.int64,
    )
    rater_ids = np.array(
        session.scalars(
            select(Label.rater_id)
            .where(Label.project_id == project.id, *assisted_clause(assisted))
            .distinct()
        ).all(),
        dtype=np.int64,
    )
    rater_ids.sort()
    names = dict(
        session.execute(select(User.id, User.name).where(User.id.in_(rater_ids.tolist()))).all()
    )
    n, r, e = image_ids.size, rater_ids.size, len(EXPLANATION_CODES)

    labeled = np.zeros((n, r), dtype=bool)
    classes = np.full((n, r), -1, dtype=np.int64)
    expl = np.zeros((n, r, e), dtype=bool)
    grades = np.full((n, r), np.nan)
    non_graded = np.full((n, r), -1, dtype=np.int64)
    diagnosis = np.full((n, r), -1, dtype=np.int64)
    codes: dict[str, int] = {}
    class_of = {d: i for i, d in enumerate(QUALITY_DECISIONS)}
    ng_of = {d: i for i, d in enumerate(NON_GRADED)}
    expl_of = {c: i for i, c in enumerate(EXPLANATION_CODES)}
    result = session.execute(
        select(
            Label.image_id,
            Label.rater_id,
            Label.decision,
            Label.icd10,
            Label.explanations,
            Label.grade,
        )
        .where(Label.project_id == project.id, *assisted_clause(assisted))
        .execution_options(yield_per=10_000)
    )
    for chunk in result.partitions():  # streamed in chunks: memory stays flat at any project size
        img_idx = np.searchsorted(
            image_ids, np.fromiter((x[0] for x in chunk), np.int64, len(chunk))
        )
        rat_idx = np.searchsorted(
            rater_ids, np.fromiter((x[1] for x in chunk), np.int64, len(chunk))
        )
        labeled[img_idx, rat_idx] = True
        for i, j, (_img, _rat, decision, icd10, explanations, grade) in zip(
            img_idx, rat_idx, chunk, strict=True
        ):
            if decision in class_of:
                classes[i, j] = class_of[decision]
            elif decision == GRADED and grade is not None:
                grades[i, j] = grade
            elif decision in ng_of:
                non_graded[i, j] = ng_of[decision]
            for code in explanations or ():
                if code in expl_of:
                    expl[i, j, expl_of[code]] = True
            if icd10:
                diagnosis[i, j] = codes.setdefault(icd10, len(codes))

    adjudication = np.full(n, -1, dtype=np.int64)
    for image_id, decision in session.execute(
        select(Adjudication.image_id, Adjudication.decision).where(
            Adjudication.project_id == project.id
        )
    ):
        pos = np.searchsorted(image_ids, image_id)
        if pos < n and image_ids[pos] == image_id and decision in QUALITY_DECISIONS:
            adjudication[pos] = QUALITY_DECISIONS.index(decision)

    return LabelMatrix(
        project_id=project.id,
        protocol=project.protocol,
        image_ids=image_ids,
        golden=np.isin(image_ids, golden_ids),
        rater_ids=rater_ids,
        rater_names=[names.get(int(x), str(x)) for x in rater_ids],
        labeled=labeled,
        classes=classes,
        explanations=expl,
        grades=grades,
        non_graded=non_graded,
        diagnosis=diagnosis,
        diagnosis_codes=list(codes),
        adjudication=adjudication,
        case_ids=_column([row[1] for row in meta_rows]),
        fitzpatrick=_column([_skin_type(row[2], row[4]) for row in meta_rows]),
        body_site=_column([row[3] for row in meta_rows]),
        flagged=np.isin(
            image_ids, np.array(sorted(flagged_image_ids(session, project)), dtype=np.int64)
        ),
        skin_types=_main_skin_types(project, grades, non_graded)
        if protocols.get(project.protocol).answers_are_skin_types
        else _skin_type_answers(session, project, image_ids, rater_ids, assisted),
    )


def _main_skin_types(project: Project, grades: np.ndarray, non_graded: np.ndarray) -> np.ndarray:
    """A skin-type project's answers as skin-type codes (n, r): its grades 1-6, 0 for "cannot
    assess", -1 none, so the reports read them as they read the skin-type second question."""
    types = np.where(np.isnan(grades), -1, grades).astype(np.int64)
    return np.where(types >= 1, types, np.where(non_graded >= 0, 0, -1))


def _skin_type_answers(
    session: Session,
    project: Project,
    image_ids: np.ndarray,
    rater_ids: np.ndarray,
    assisted: bool | None = None,
) -> np.ndarray | None:
    """The raters' skin-type answers (n, r): 1-6, 0 cannot assess, -1 none; None if nobody gave one.

    Only the labels the matrix holds (the same ``assisted`` filter), each in its own rater's column."""
    rows = session.execute(
        select(Label.image_id, Label.rater_id, Label.skin_type).where(
            Label.project_id == project.id,
            Label.skin_type.is_not(None),
            *assisted_clause(assisted),
        )
    ).all()
    if not rows:
        return None
    out = np.full((image_ids.size, rater_ids.size), -1, dtype=np.int64)
    img_of = np.array([row[0] for row in rows], dtype=np.int64)
    rat_of = np.array([row[1] for row in rows], dtype=np.int64)
    img = np.searchsorted(image_ids, img_of)
    rat = np.searchsorted(rater_ids, rat_of)
    # a label outside the matrix (none with the same filter) has no cell: never another's
    known = (img < image_ids.size) & (rat < rater_ids.size)
    known[known] &= (image_ids[img[known]] == img_of[known]) & (
        rater_ids[rat[known]] == rat_of[known]
    )
    out[img[known], rat[known]] = np.array([row[2] for row in rows], dtype=np.int64)[known]
    return out


# Manifest columns other than `fitzpatrick` that some sources use for the skin type (kept in meta).
SKIN_TYPE_META_KEYS = ("fitzpatrick_type", "skin_type", "fst")


def _skin_type(column: int | None, meta: dict | None) -> object:
    """The image's Fitzpatrick value: the parsed column, else a skin-type entry of its metadata."""
    if column is not None:
        return column
    for key in SKIN_TYPE_META_KEYS:
        if meta and meta.get(key) not in (None, ""):
            return meta[key]
    return None


def _column(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
