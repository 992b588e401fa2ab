"""Synthetic but realistic test data for the ML tests: real photos from scikit-image's bundled
samples, degraded synthetically, plus procedural skin; written as files with a training manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "rocket",
    "text",
    "retina",
    "cell",
)
SIZE = 256
DEGRADATIONS = ("too_far_away", "bad_framing", "blurry", "bad_light", "low_resolution")


def photo(name: str) -> np.ndarray:
    from skimage import data

    im = np.asarray(getattr(data, name)())
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    return np.ascontiguousarray(im[..., :3].astype(np.uint8))


def _crop(rng: np.random.Generator, im: np.ndarray, size: int = SIZE) -> Image.Image:
    h, w = im.shape[:2]
    side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return Image.fromarray(im[y : y + side, x : x + side]).resize(
        (size, size), Image.Resampling.BILINEAR
    )


def skin(rng: np.random.Generator, lesion: bool, size: int = SIZE) -> Image.Image:
    """Procedural skin: tone, low-frequency shading, pores, hairs; optionally a pigmented blob."""
    tone = np.array([rng.uniform(150, 235), rng.uniform(105, 180), rng.uniform(80, 150)])
    low = (
        np.asarray(
            Image.fromarray(rng.uniform(0, 255, (6, 6)).astype(np.uint8)).resize(
                (size, size), Image.Resampling.BICUBIC
            ),
            float,
        )
        / 255
        - 0.5
    )
    img = tone[None, None, :] * (1 + 0.18 * low[..., None]) + rng.normal(0, 4, (size, size, 1))
    pores = rng.random((size, size)) < 0.01
    img[pores] *= 0.8
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(0, 6))):
        x, y = rng.uniform(0, size, 2)
        a = rng.uniform(0, np.pi)
        draw.line([(x, y), (x + 40 * np.cos(a), y + 40 * np.sin(a))], fill=(60, 40, 30), width=1)
    if lesion:
        cx, cy = rng.uniform(0.35, 0.65, 2) * size
        r = rng.uniform(0.08, 0.2) * size
        ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        rad = r * (1 + 0.25 * rng.standard_normal(24))
        color = tuple(int(v) for v in rng.uniform([60, 30, 20], [130, 80, 60]))
        draw.polygon(
            [(cx + q * np.cos(t), cy + q * np.sin(t)) for q, t in zip(rad, ang, strict=True)],
            fill=color,
        )
    return im.filter(ImageFilter.GaussianBlur(0.7))


def degrade(
    rng: np.random.Generator, im: Image.Image, kind: str, background: Image.Image
) -> Image.Image:
    size = im.size[0]
    if kind == "blurry":
        return im.filter(ImageFilter.GaussianBlur(float(rng.uniform(3.5, 7))))
    if kind == "bad_light":
        a = np.asarray(im, float)
        if rng.random() < 0.6:
            a = a * rng.uniform(0.12, 0.3) * rng.uniform(0.7, 1.3, 3)
        else:
            a = a * 1.6 + rng.uniform(70, 110)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if kind == "low_resolution":
        small = int(rng.integers(16, 36))
        return im.resize((small, small), Image.Resampling.BILINEAR).resize(
            (size, size), Image.Resampling.NEAREST
        )
    if kind == "too_far_away":
        s = int(size * rng.uniform(0.25, 0.45))
        out = background.copy()
        x, y = (int(v) for v in rng.integers(0, size - s, 2))
        out.paste(im.resize((s, s), Image.Resampling.BILINEAR), (x, y))
        return out
    if kind == "bad_framing":
        out = background.copy()
        shift = int(size * rng.uniform(0.4, 0.6))
        dx, dy = [(shift, 0), (-shift, 0), (0, shift), (0, -shift)][int(rng.integers(4))]
        out.paste(im.rotate(float(rng.uniform(-25, 25))), (dx, dy))
        return out
    raise ValueError(kind)


def _save(im: Image.Image, path: Path) -> str:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def quality_dataset(
    root: Path, n: int, *, seed: int = 0, golden: int = 0, header: bool = True
) -> Path:
    """n images (lesion / no_skin / healthy_skin / poor_quality) + a manifest; cases of 1-3 images."""
    rng = np.random.default_rng(seed)
    photos = {name: photo(name) for name in PHOTOS}
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    case = 0
    for i in range(n):
        if rng.random() < 0.5:
            case += 1
        cls = ["lesion", "no_skin", "healthy_skin", "poor_quality", "poor_quality"][
            int(rng.integers(5))
        ]
        expl: list[str] = []
        if cls == "no_skin":
            im = _crop(rng, photos[PHOTOS[int(rng.integers(len(PHOTOS)))]])
        else:
            base_photo = cls == "poor_quality" and rng.random() < 0.3
            im = (
                _crop(rng, photos[PHOTOS[int(rng.integers(len(PHOTOS)))]])
                if base_photo
                else skin(
                    rng, lesion=cls == "lesion" or (cls == "poor_quality" and rng.random() < 0.5)
                )
            )
        if cls == "poor_quality":
            first = DEGRADATIONS[int(rng.integers(5))]
            expl = [first]
            if rng.random() < 0.3:
                rest = [
                    d
                    for d in DEGRADATIONS
                    if d != first and {d, first} != {"too_far_away", "bad_framing"}
                ]
                expl.append(rest[int(rng.integers(len(rest)))])
            # geometry first, then pixel-level degradations
            for kind in sorted(expl, key=lambda k: k not in ("too_far_away", "bad_framing")):
                bg = _crop(rng, photos[PHOTOS[int(rng.integers(len(PHOTOS)))]])
                im = degrade(rng, im, kind, bg)
            if rng.random() < 0.2:
                expl.append("lesion_covered")  # recorded by raters, ignored by the model
        path = root / f"img{i:04d}.jpg"
        sha = _save(im, path)
        tie = rng.random() < 0.03
        rows.append(
            {
                "image_id": i,
                "sha256": sha,
                "path": str(path),
                "case_id": f"c{case}",
                "split": "golden" if i >= n - golden else "fold",
                "quality": {"class": None if tie else cls, "tie": tie, "explanations": expl},
                "severity": None,
            }
        )
    return _write_manifest(root / "manifest.jsonl", rows, "quality" if header else None)


def papules(rng: np.random.Generator, base: np.ndarray, grade: int) -> np.ndarray:
    """Red papules on the forehead, cheeks and chin; their number grows with the grade (1 = clear)."""
    im = Image.fromarray(base.copy())
    draw = ImageDraw.Draw(im)
    for x0, y0, x1, y1 in SKIN:
        for _ in range((grade - 1) * 4 + int(rng.integers(0, 2))):
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            r = rng.uniform(1.1, 1.9)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(int(rng.uniform(150, 200)), 40, 50))
    return np.asarray(im)


FACE = (170, 60, 280, 190)  # the astronaut's face (x0, y0, x1, y1), checked by eye
# Her forehead, cheeks and chin (a little larger than the patches the landmarks give).
SKIN = ((198, 72, 255, 92), (180, 117, 214, 151), (232, 120, 266, 154), (208, 152, 237, 172))


def severity_dataset(root: Path, n: int, *, seed: int = 0, golden: int = 0) -> Path:
    """Variants of scikit-image's astronaut with synthetic acne grades 1-5 painted on the face."""
    rng = np.random.default_rng(seed)
    base = photo("astronaut")
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        grade = int(rng.integers(1, 6))
        a = papules(rng, base, grade).astype(float) * rng.uniform(0.85, 1.1)
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        path = root / f"sev{i:04d}.jpg"
        sha = _save(im, path)
        grades = np.clip(grade + rng.integers(-1, 2, 3) * (rng.random(3) < 0.3), 1, 5)
        rows.append(
            {
                "image_id": i,
                "sha256": sha,
                "path": str(path),
                "case_id": f"s{i // 2}",
                "split": "golden" if i >= n - golden else "fold",
                "quality": None,
                "severity": {
                    "mean": float(grades.mean()),
                    "median": float(np.median(grades)),
                    "std": float(grades.std()),
                    "count": 3,
                    "grade": grade,
                },
            }
        )
    return _write_manifest(root / "manifest.jsonl", rows, "severity")


def _write_manifest(path: Path, rows: list[dict], protocol: str | None) -> Path:
    lines = []
    if protocol:
        lines.append(
            {"manifest": "labeler-training", "version": 1, "project_id": 1, "protocol": protocol}
        )
    lines += rows
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path
