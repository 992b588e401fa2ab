"""Read the training manifest that the export module writes (no torch here).

Format: JSON Lines (UTF-8), one object per image::

    {"image_id": 17, "sha256": "ab12...", "path": "/abs/path/display.jpg",
     "case_id": "patient-9" | null, "split": "golden" | "fold",
     "fitzpatrick": 1-6 | null, "body_site": "face" | null,   (optional; for fairness breakdowns)
     "quality": null | {"class": "lesion" | "no_skin" | "healthy_skin" | "poor_quality" | null,
                        "tie": false, "explanations": ["blurry", ...]},
     "severity": null | {"mean": 2.4, "median": 2.0, "std": 0.5, "count": 5, "grade": 2 | null}}

* ``quality.class`` is the fused class; null means an unresolved tie (``tie`` is then true).
  ``explanations`` lists the explanations that are relevant after fusion; names the model does
  not predict (``lesion_covered``) are ignored by the trainer.
* ``severity.mean`` is the consensus (mean of the raters' grades) and the training target; a
  null mean (every rater chose a non-graded answer) reads as "no severity label".
* ``path`` may be null (the display file is missing from storage): such rows are read but left
  out of training and evaluation.
* ``case_id`` groups images of one patient/lesion: splits never put one case on both sides.
  A null case is its own group (keyed by the image sha256).
* The first line MAY be a header ``{"manifest": "labeler-training", "version": 1,
  "project_id": 3, "protocol": "quality" | "severity"}``; files with and without it are accepted.
* A per-case label (a project that answers once per case, docs/domain.md section 11) is one line
  per case: the fields above for its first photo and ``"unit": "case"``, ``"images": [{"image_id",
  "sha256", "path"}, ...]`` listing every photo; each photo is read as a row with the case's label.
* Blank lines are skipped. Anything else malformed raises ``ManifestError`` with the line number.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import QUALITY_CLASSES
from .errors import ManifestError

SPLITS = ("golden", "fold")


@dataclass(frozen=True)
class QualityLabel:
    cls: str | None
    tie: bool
    explanations: tuple[str, ...]


@dataclass(frozen=True)
class SeverityLabel:
    mean: float
    median: float | None
    std: float | None
    count: int
    grade: int | None


@dataclass(frozen=True)
class ManifestRow:
    image_id: int
    sha256: str
    path: str | None
    case_id: str | None
    split: str
    quality: QualityLabel | None
    severity: SeverityLabel | None
    fitzpatrick: int | None = None  # from the import manifest: the evaluation's fairness breakdown
    body_site: str | None = None

    @property
    def group(self) -> str:
        """The unit that splits keep together: the case, or the image itself when it has none."""
        return f"case:{self.case_id}" if self.case_id is not None else f"image:{self.sha256}"


@dataclass
class Manifest:
    rows: list[ManifestRow]
    header: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: str = ""

    @property
    def scale(self) -> list[float] | None:
        """The project's severity scale from the header (None for older manifests)."""
        scale = self.header.get("scale")
        return [float(v) for v in scale] if isinstance(scale, list) and scale else None

    def quality_training_rows(self) -> list[ManifestRow]:
        """Rows the quality model trains on: a resolved fused class, not a tie, not golden."""
        return [r for r in self.rows if r.split != "golden" and _resolved(r)]

    def quality_rows(self, split: str) -> list[ManifestRow]:
        """Rows of one split with a resolved quality class and an image file."""
        return [r for r in self.rows if r.split == split and _resolved(r)]

    def severity_training_rows(self) -> list[ManifestRow]:
        return self.severity_rows("fold")

    def severity_rows(self, split: str) -> list[ManifestRow]:
        """Rows of one split with a severity consensus and an image file."""
        return [r for r in self.rows if r.split == split and r.severity is not None and r.path]


def _resolved(r: ManifestRow) -> bool:
    q = r.quality
    return q is not None and q.cls is not None and not q.tie and bool(r.path)


def read_manifest(path: str | Path) -> Manifest:
    """Parse and validate a manifest file; its sha256 identifies the training data of a model."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read training manifest {p}: {exc.strerror}") from exc
    header: dict[str, Any] = {}
    rows: list[ManifestRow] = []
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{p.name} line {lineno}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise ManifestError(f"{p.name} line {lineno}: expected a JSON object")
        if "manifest" in obj:
            if rows or header:
                raise ManifestError(f"{p.name} line {lineno}: the header must be the first line")
            if obj.get("manifest") != "labeler-training" or obj.get("version") != 1:
                raise ManifestError(f"{p.name}: unsupported manifest header {obj!r}")
            header = obj
            continue
        rows.extend(_rows(obj, f"{p.name} line {lineno}"))
    return Manifest(rows, header, hashlib.sha256(raw).hexdigest(), str(p))


def _rows(obj: dict[str, Any], where: str) -> list[ManifestRow]:
    """One row per image: a per-case line gives each photo of its ``images`` the case's label."""
    photos = obj.get("images")
    if photos is None:
        return [_row(obj, where)]
    if not isinstance(photos, list) or not photos or not all(isinstance(x, dict) for x in photos):
        raise ManifestError(f"{where}: 'images' must be a list of {{image_id, sha256, path}}")
    return [_row({**obj, **photo}, where) for photo in photos]


def _row(obj: dict[str, Any], where: str) -> ManifestRow:
    try:
        split = obj["split"]
        if split not in SPLITS:
            raise ManifestError(f"{where}: split must be one of {SPLITS}, got {split!r}")
        case = obj.get("case_id")
        return ManifestRow(
            image_id=int(obj["image_id"]),
            sha256=str(obj["sha256"]),
            path=None if obj["path"] is None else str(obj["path"]),
            case_id=None if case is None else str(case),
            split=split,
            quality=_quality(obj.get("quality"), where),
            severity=_severity(obj.get("severity")),
            fitzpatrick=None if obj.get("fitzpatrick") is None else int(obj["fitzpatrick"]),
            body_site=None if obj.get("body_site") is None else str(obj["body_site"]),
        )
    except KeyError as exc:
        raise ManifestError(f"{where}: missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: bad value ({exc})") from exc


def _quality(q: dict[str, Any] | None, where: str) -> QualityLabel | None:
    if q is None:
        return None
    cls = q.get("class")
    if cls is not None and cls not in QUALITY_CLASSES:
        raise ManifestError(f"{where}: unknown quality class {cls!r}")
    return QualityLabel(cls, bool(q.get("tie", False)), tuple(q.get("explanations") or ()))


def _severity(s: dict[str, Any] | None) -> SeverityLabel | None:
    if s is None or s.get("mean") is None:
        return None
    opt = lambda k, t: None if s.get(k) is None else t(s[k])
    return SeverityLabel(
        float(s["mean"]),
        opt("median", float),
        opt("std", float),
        int(s.get("count", 0)),
        opt("grade", int),
    )
