"""The demo: generated photographs that look like the field, metadata in the import manifest, and a
panel of demo raters whose figures tell a readable story; enough labels to train and judge both models."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from labeler import demo, demo_images
from labeler.allocation.models import GoldenImage
from labeler.auth.models import User
from labeler.images.models import Image as ImageRow
from labeler.images.services import read_manifest
from labeler.labeling.models import Label
from labeler.ml.manifest import read_manifest as read_training_manifest
from labeler.ml.quality import MIN_IMAGES as QUALITY_MIN
from labeler.ml.severity import MIN_IMAGES as SEVERITY_MIN
from labeler.projects.models import Project
from labeler.projects.settings import read_settings
from labeler.reports.export import training_manifest
from labeler.reports.services import project_agreement, tie_list


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)


def _sharpness(a: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: high for a sharp photo, low for a blurred one."""
    g = a.mean(axis=2)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def test_specs_cover_the_field_and_the_manifest_carries_the_metadata():
    specs = demo_images.quality_specs(60, seed=7)
    assert len(specs) == 60 and len({s.filename for s in specs}) == 60
    assert {s.cls for s in specs} == {"lesion", "healthy_skin", "no_skin", "poor_quality"}
    skin = [s for s in specs if s.kind == "skin"]
    assert {s.fitzpatrick for s in skin} == set(range(1, 7))
    assert {e for s in specs for e in s.explanations} >= {
        "blurry",
        "bad_light",
        "lesion_covered",
    } and {e for s in specs for e in s.explanations} & {"too_far_away", "bad_framing"}
    assert {s.lesion for s in skin if s.lesion} == set(demo_images.LESIONS)
    # a degraded retake belongs to the case of its clean photograph (never split across sides)
    for retake in (s for s in specs if s.cls == "poor_quality"):
        clean = [s for s in specs if s.case_id == retake.case_id and s.cls != "poor_quality"]
        assert clean and clean[0].lesion == retake.lesion
    faces = demo_images.severity_specs(30, seed=8)
    assert sorted({s.grade for s in faces}) == [1, 2, 3, 4, 5]
    assert {s.fitzpatrick for s in faces} == set(range(1, 7))
    visits = [sum(f.case_id == c for f in faces) for c in {f.case_id for f in faces}]
    assert max(visits) == 2 and min(visits) == 1  # one or two photographs per patient

    rows = read_manifest(demo_images.manifest_csv(specs + faces))
    for s in specs + faces:
        row = rows[s.filename]
        assert row["case_id"] == s.case_id and row["fitzpatrick"] == s.fitzpatrick
        assert row["body_site"] == (s.body_site or None)


def test_degraded_retakes_are_degraded_the_way_they_say():
    specs = demo_images.quality_specs(60, seed=7)
    case = {s.case_id: [] for s in specs}
    for s in specs:
        case[s.case_id].append(s)
    seen = set()
    for group in case.values():
        clean = next((s for s in group if s.cls != "poor_quality"), None)
        for retake in (s for s in group if s.cls == "poor_quality"):
            what = retake.explanations[0]
            if what in seen or clean is None:
                continue
            seen.add(what)
            a, b = _pixels(demo_images.render(clean)), _pixels(demo_images.render(retake))
            assert a.shape == b.shape == (480, 640, 3)
            if what == "blurry":
                assert _sharpness(b) < _sharpness(a) / 4
            elif what == "bad_light":  # from plainly too dark to merely dim (its difficulty)
                assert b.mean() < (0.45 + 0.4 * retake.difficulty) * a.mean()
            elif what == "lesion_covered":  # a plaster over the lesion: the spot changed, not all
                changed = np.abs(a - b).sum(axis=2) > 30
                assert 0.02 < changed.mean() < 0.5
            elif what == "too_far_away":  # the skin is a small part of another scene
                assert np.abs(a - b).mean() > 20
    assert {"blurry", "bad_light", "lesion_covered"} <= seen


def test_rendering_is_deterministic_and_lesions_show():
    specs = demo_images.quality_specs(13, seed=7)
    lesion = next(s for s in specs if s.cls == "lesion")
    assert demo_images.render(lesion) == demo_images.render(lesion)
    healthy = next(s for s in specs if s.cls == "healthy_skin")
    for s in (lesion, healthy):
        a = _pixels(demo_images.render(s))
        grey = a.mean(axis=2)
        dark = grey < np.median(grey) * 0.75  # pigment far darker than the surrounding skin
        assert (dark.mean() > 0.003) == (s is lesion)


def test_acne_grows_with_the_grade():
    tone = np.array(demo_images.FITZPATRICK_TONES[3], np.float32)
    changed = []
    for grade in range(1, 6):
        img = np.broadcast_to(tone, (300, 300, 3)).copy()
        demo_images.acne(np.random.default_rng(0), img, [(20, 20, 280, 280)], grade, tone, 2.0)
        changed.append(float((np.abs(img - tone).sum(axis=2) > 12).mean()))
    assert changed == sorted(changed) and changed[-1] > 5 * max(changed[1], 1e-3)


def test_without_scikit_image_the_demo_still_draws(monkeypatch):
    caches = (demo_images.face_photo, demo_images._face_base, demo_images.sample_photos)
    for f in caches:
        f.cache_clear()
    monkeypatch.setitem(sys.modules, "skimage", None)
    try:
        face = demo_images.severity_specs(2, seed=8)[0]
        photo = _pixels(demo_images.render(face))
        assert photo.shape == (560, 560, 3)  # a procedural cheek close-up instead of the face
        other = next(s for s in demo_images.quality_specs(13, seed=7) if s.cls == "no_skin")
        assert _pixels(demo_images.render(other)).shape == (480, 640, 3)
    finally:
        for f in caches:
            f.cache_clear()


def _tiny_render(spec: demo_images.DemoImage) -> bytes:
    """A small distinct JPEG per spec: what the panel labels does not depend on the pixels."""
    rng = np.random.default_rng(spec.seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def demo_db(app, db, monkeypatch):
    monkeypatch.setattr(demo, "render", _tiny_render)
    storage = app.extensions["labeler_storage"]
    lines = demo.build_demo(db, storage, demo.DEFAULT_IMAGES, checkpoint=db.flush)
    return db, storage, lines


def _manifest(db, storage, project, tmp_path):
    path = tmp_path / f"manifest-{project.id}.jsonl"
    path.write_text("".join(training_manifest(db, project, storage)), encoding="utf-8")
    return read_training_manifest(path)


def test_demo_loads_both_projects_with_enough_labels_to_train_and_judge(demo_db, tmp_path):
    db, storage, lines = demo_db
    projects = {p.protocol.value: p for p in db.scalars(select(Project))}
    assert set(projects) == {"quality", "severity"}
    rater1 = db.scalar(select(User).where(User.email == "rater1@demo.test"))
    assert db.scalar(select(func.count(Label.id)).where(Label.rater_id == rater1.id)) == 0
    for protocol, project in projects.items():
        images = db.scalars(select(ImageRow).where(ImageRow.project_id == project.id)).all()
        assert len(images) == demo.DEFAULT_IMAGES
        assert all(i.case_id for i in images)
        skin = [i for i in images if "_photo" not in i.filename]  # no-skin photos have no site
        assert all(i.body_site and i.fitzpatrick in range(1, 7) for i in skin)
        golden = db.scalar(
            select(func.count(GoldenImage.image_id)).where(GoldenImage.project_id == project.id)
        )
        manifest = _manifest(db, storage, project, tmp_path)
        minimum = read_settings(project.settings).min_eval_images
        if protocol == "quality":
            assert len(manifest.quality_training_rows()) >= QUALITY_MIN
            assert len(manifest.quality_rows("golden")) >= minimum
        else:
            assert len(manifest.severity_training_rows()) >= SEVERITY_MIN
            assert len(manifest.severity_rows("golden")) >= minimum
        assert golden >= minimum
    assert any("rater1 starts fresh" in line for line in lines)

    again = demo.build_demo(db, storage, demo.DEFAULT_IMAGES, checkpoint=db.flush)
    assert all("0 imported" in line for line in again if line.startswith("Demo:"))
    assert not any("pre-filled" in line for line in again)  # labels are not added twice


def test_demo_panel_agrees_like_a_panel_with_its_habits(demo_db):
    db, _storage, _lines = demo_db
    projects = {p.protocol.value: p for p in db.scalars(select(Project))}
    raters = {u.email: u for u in db.scalars(select(User).where(User.email.like("rater%")))}

    quality = project_agreement(db, projects["quality"], "all")
    chance = 1 / len(quality["classes"])
    assert quality["macro_f1"]["mean"] > chance + 0.35  # well above a coin with four sides
    assert quality["macro_f1"]["mean"] < 0.97  # but they are people: not unanimous
    assert quality["kappa"]["mean"] > 0.5
    ties = tie_list(db, projects["quality"])
    assert 0 < len(ties) < 0.2 * demo.DEFAULT_IMAGES  # a few ties for the lead to adjudicate
    tendencies = {r["rater_id"]: r for r in quality["tendencies"]["raters"]}
    blurry = {
        email: next(
            e["difference"]
            for e in tendencies[raters[email].id]["explanations"]
            if e["explanation"] == "blurry"
        )
        for email in demo.PANEL
    }
    assert max(blurry, key=blurry.get) == "rater2@demo.test" and blurry["rater2@demo.test"] > 0

    severity = project_agreement(db, projects["severity"], "all")
    assert severity["kappa_quadratic"]["mean"] > 0.6
    assert severity["krippendorff_alpha"]["ordinal"] > 0.6
    grades = {}
    for email in demo.PANEL:
        grades[email] = db.scalar(
            select(func.avg(Label.grade)).where(
                Label.project_id == projects["severity"].id, Label.rater_id == raters[email].id
            )
        )
    harsh = grades.pop("rater3@demo.test")
    assert all(harsh > g + 0.3 for g in grades.values())  # one step harsher, more often than not
    # the harsh rater is the one who sets the bar (the worst RMSE against the consensus)
    assert severity["bar_rater_id"] == raters["rater3@demo.test"].id
