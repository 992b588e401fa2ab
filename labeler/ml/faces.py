"""Skin patches for the severity model: forehead, both cheeks, chin (the Microsoft/Nestlé acne severity study). No torch.

Landmarks come from models shipped inside wheels, nothing is downloaded:

* ``dlib5`` (default): dlib's HOG face detector and the public-domain 5-point shape predictor
  from ``face-recognition-models`` (the 68-point model there is non-commercial: not used).
  If dlib finds no face, the Haar cascades are tried.
* ``haar``: OpenCV's Haar cascades (frontal face, profile face, eyes), opencv-python-headless < 5.

Patches are placed relative to the eye centres and inter-ocular distance d. With a face box and
only one eye (a profile selfie) the one-eye fallback places forehead, one cheek and chin from the
box and that eye. Without a face the whole image is one patch. Boxes are (x0, y0, x1, y1) pixels.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

DETECT_SIDE = 640  # detect on a copy at most this large, then scale the boxes back


@dataclass(frozen=True)
class Patch:
    name: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class PatchSet:
    method: str  # "dlib5", "haar", "haar-one-eye", "haar-face-box" or "whole-image"
    patches: tuple[Patch, ...]
    face: tuple[int, int, int, int] | None = None


@functools.cache
def _dlib():
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")  # its __init__ needs pkg_resources
    if spec is None or spec.origin is None:
        raise ImportError("face-recognition-models is not installed: pip install -e .[ml]")
    model = os.path.join(
        os.path.dirname(spec.origin), "models", "shape_predictor_5_face_landmarks.dat"
    )
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(model)


@functools.cache
def _haar():
    import cv2

    load = lambda name: cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
    return (
        load("haarcascade_frontalface_default.xml"),
        load("haarcascade_profileface.xml"),
        load("haarcascade_eye.xml"),
    )


def _box(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def patches_from_eyes(e1, e2, nose=None) -> list[tuple[str, tuple[float, ...]]]:
    """Forehead, cheeks and chin from two eye centres (and the nose tip when known)."""
    a, b = np.asarray(e1, float), np.asarray(e2, float)
    if a[0] > b[0]:
        a, b = b, a  # a: image-left eye
    axis = b - a
    d = float(np.hypot(*axis)) or 1.0
    ex = axis / d
    down = np.array([-ex[1], ex[0]])  # perpendicular, pointing down the face for upright faces
    mid = (a + b) / 2
    if nose is not None and np.dot(np.asarray(nose, float) - mid, down) < 0:
        down = -down
    nose_pt = np.asarray(nose, float) if nose is not None else mid + 0.75 * d * down
    fore = mid - 0.5 * d * down
    left = a + 0.75 * d * down - 0.1 * d * ex
    right = b + 0.75 * d * down + 0.1 * d * ex
    chin = nose_pt + 0.62 * d * down
    return [
        ("forehead", _box(*fore, 1.1 * d, 0.3 * d)),
        ("left_cheek", _box(*left, 0.6 * d, 0.6 * d)),
        ("right_cheek", _box(*right, 0.6 * d, 0.6 * d)),
        ("chin", _box(*chin, 0.5 * d, 0.3 * d)),
    ]


def patches_one_eye(eye, face) -> list[tuple[str, tuple[float, ...]]]:
    """One-eye fallback (profile selfies): forehead, the visible cheek and chin from the face box."""
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    ex, ey = eye
    cx = (x0 + x1) / 2
    return [
        ("forehead", _box((ex + cx) / 2, y0 + 0.15 * h, 0.4 * w, 0.15 * h)),
        ("cheek", _box(ex, ey + 0.3 * h, 0.28 * w, 0.25 * h)),
        ("chin", _box(cx, y0 + 0.9 * h, 0.25 * w, 0.15 * h)),
    ]


def _finish(raw, size: tuple[int, int], scale: float) -> tuple[Patch, ...]:
    """Scale to the full image, clip, and drop patches mostly outside the image."""
    W, H = size
    out = []
    for name, (x0, y0, x1, y1) in raw:
        x0, y0, x1, y1 = (v / scale for v in (x0, y0, x1, y1))
        area = max(x1 - x0, 1) * max(y1 - y0, 1)
        c = (max(0, round(x0)), max(0, round(y0)), min(W, round(x1)), min(H, round(y1)))
        kept = max(c[2] - c[0], 0) * max(c[3] - c[1], 0)
        if kept >= 0.6 * area and min(c[2] - c[0], c[3] - c[1]) >= 4:
            out.append(Patch(name, c))
    return tuple(out)


def _detect_dlib(gray: np.ndarray):
    detector, predictor = _dlib()
    for upsample in (0, 1):
        faces = detector(gray, upsample)
        if len(faces):
            f = max(faces, key=lambda r: r.width() * r.height())  # the selfie's subject
            pts = np.array([(p.x, p.y) for p in predictor(gray, f).parts()], float)
            box = (f.left(), f.top(), f.right(), f.bottom())
            return box, patches_from_eyes(pts[0:2].mean(0), pts[2:4].mean(0), pts[4])
    return None


def _detect_haar(gray: np.ndarray):
    frontal, profile, eye_cascade = _haar()
    found = frontal.detectMultiScale(gray, 1.1, 5, minSize=(40, 40))
    if len(found) == 0:
        found = profile.detectMultiScale(gray, 1.1, 5, minSize=(40, 40))
    if len(found) == 0:
        flipped = profile.detectMultiScale(
            np.ascontiguousarray(gray[:, ::-1]), 1.1, 5, minSize=(40, 40)
        )
        found = [(gray.shape[1] - x - w, y, w, h) for x, y, w, h in flipped]
    if len(found) == 0:
        return None
    x, y, w, h = max(found, key=lambda r: r[2] * r[3])
    box = (int(x), int(y), int(x + w), int(y + h))
    upper = gray[y : y + h * 6 // 10, x : x + w]
    eyes = eye_cascade.detectMultiScale(upper, 1.1, 5, minSize=(max(w // 10, 8),) * 2)
    centres = sorted(
        ((x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in eyes), key=lambda c: c[0]
    )
    if len(centres) >= 2:
        return box, patches_from_eyes(centres[0], centres[-1]), "haar"
    if len(centres) == 1:
        return box, patches_one_eye(centres[0], box), "haar-one-eye"
    eye_y = y + 0.38 * h
    return box, patches_from_eyes((x + 0.3 * w, eye_y), (x + 0.7 * w, eye_y)), "haar-face-box"


def find_patches(rgb: np.ndarray, method: str = "dlib5") -> PatchSet:
    """Skin patches of an HxWx3 uint8 RGB image; falls back to Haar, then to the whole image."""
    import cv2

    H, W = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(H, W))
    small = (
        rgb
        if scale == 1.0
        else cv2.resize(rgb, (round(W * scale), round(H * scale)), interpolation=cv2.INTER_AREA)
    )
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    if method not in ("dlib5", "haar"):
        raise ValueError(f"unknown landmark method {method!r}")
    if method == "dlib5":
        hit = _detect_dlib(gray)
        if hit is not None:
            patches = _finish(hit[1], (W, H), scale)
            if patches:
                return PatchSet("dlib5", patches, tuple(round(v / scale) for v in hit[0]))
    hit = _detect_haar(gray)
    if hit is not None:
        patches = _finish(hit[1], (W, H), scale)
        if patches:
            return PatchSet(hit[2], patches, tuple(round(v / scale) for v in hit[0]))
    return PatchSet("whole-image", (Patch("whole_image", (0, 0, W, H)),), None)
