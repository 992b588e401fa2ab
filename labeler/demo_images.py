"""Demo photographs made from code: skin close-ups, lesions, acne on faces, degraded retakes.

Nothing is downloaded. Skin is procedural (tone per Fitzpatrick type, uneven pigment and redness,
pores, creases, hairs, soft light); lesions are drawn on it (pigmented naevi and melanoma-like
lesions with irregular borders, psoriasis-like plaques, seborrhoeic keratoses); acne (comedones,
papules, pustules, nodules) is composited onto the face photograph that scikit-image ships
(``skimage.data.astronaut``) when scikit-image is installed, else onto procedural cheek skin.
Poor-quality images are degraded retakes of a clean one of the same case: blurred, dark, too far
away, the lesion covered by a plaster, badly framed, low resolution; how badly varies from plainly
unusable to nearly acceptable, and one retake in four has a second, milder flaw.

Every image is drawn from its own seed, so the same spec gives the same JPEG bytes.
Pure: NumPy and Pillow in, JPEG bytes out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Approximate sRGB colours of unexposed skin for Fitzpatrick types I-VI, chosen by eye to span
# very fair to deeply pigmented skin (an illustration of the range, not a colorimetric standard).
FITZPATRICK_TONES = {
    1: (243, 214, 196),
    2: (230, 188, 160),
    3: (208, 158, 120),
    4: (172, 122, 86),
    5: (126, 86, 60),
    6: (82, 56, 42),
}
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
QUALITY_SIZE = (640, 480)
# Diagnoses of the drawn lesions (ICD-10-CM codes and names).
LESIONS = {
    "naevus": ("D22.9", "Melanocytic nevi, unspecified"),
    "melanoma": ("C43.9", "Malignant melanoma of skin, unspecified"),
    "psoriasis": ("L40.0", "Psoriasis vulgaris"),
    "seborrhoeic_keratosis": ("L82.1", "Other seborrheic keratosis"),
}
BODY_SITES = ("forearm", "back", "lower leg", "chest", "upper arm", "thigh", "abdomen", "neck")
# The astronaut's face in skimage.data.astronaut() (512 x 512): the head crop the severity demo
# uses, and forehead, cheeks and chin inside it (x0, y0, x1, y1), checked by eye.
HEAD = (118, 18, 330, 250)
FACE_SKIN = ((196, 72, 258, 98), (178, 110, 216, 158), (232, 112, 272, 160), (204, 152, 244, 182))
HEAD_SCALE = 2.4


@dataclass(frozen=True)
class DemoImage:
    """One generated photograph and the truth the demo raters answer from."""

    filename: str
    seed: int
    case_id: str
    body_site: str
    fitzpatrick: int | None
    kind: str  # "skin", "no_skin" or "face"
    cls: str | None = None  # quality truth: lesion, healthy_skin, no_skin, poor_quality
    lesion: str | None = None  # key of LESIONS drawn on the skin (None: healthy skin)
    explanations: tuple[str, ...] = ()  # for poor_quality: what is wrong with the photo
    grade: int | None = None  # severity truth on the 1-5 scale
    difficulty: float = 0.0  # 0 easy .. 1 hard: raters disagree more on hard images
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def icd10(self) -> str | None:
        return LESIONS[self.lesion][0] if self.lesion else None


# -- building blocks ---------------------------------------------------------------------------


def _noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in [-0.5, 0.5]: a random grid upsampled bicubically."""
    grid = rng.uniform(0, 255, (max(cells[0], 2), max(cells[1], 2))).astype(np.uint8)
    up = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(up, np.float32) / 255.0 - 0.5


def _soft_dots(h: int, w: int, xs, ys, radius: float) -> np.ndarray:
    """A [0, 1] mask of small soft dots at the given points."""
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    for x, y in zip(xs, ys, strict=True):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius * 0.8)), np.float32) / 255.0


def skin(rng: np.random.Generator, w: int, h: int, fitzpatrick: int, *, hairy: bool) -> np.ndarray:
    """Procedural skin (float RGB, 0-255): uneven tone, redness, pores, creases, hairs, light."""
    tone = np.array(FITZPATRICK_TONES[fitzpatrick], np.float32) * rng.uniform(0.94, 1.04, 3)
    img = np.broadcast_to(tone, (h, w, 3)).copy()
    # uneven pigment (broad) and mottling (finer); redness shows most on fair skin
    pigment = 0.10 * _noise(rng, h, w, (4, 5)) + 0.05 * _noise(rng, h, w, (18, 24))
    img *= 1 + pigment[..., None]
    red = np.clip(_noise(rng, h, w, (5, 6)) + 0.1, 0, None) * (0.32 - 0.04 * fitzpatrick)
    img += red[..., None] * np.array([40, -25, -20], np.float32)
    if fitzpatrick <= 2:  # freckles
        n = int(rng.integers(10, 60))
        fr = _soft_dots(h, w, rng.uniform(0, w, n), rng.uniform(0, h, n), rng.uniform(1.5, 3))
        img *= 1 - 0.18 * fr[..., None] * np.array([0.8, 1.0, 1.1], np.float32)
    # creases: ridges of stretched noise in two directions
    for cells in ((h // 6, 6), (6, w // 6)):
        ridge = np.abs(_noise(rng, h, w, cells))
        img *= 1 - 0.07 * np.clip(1 - ridge / 0.03, 0, 1)[..., None]
    # pores: small dark soft dots, denser where the tone is oily
    n = int(w * h * rng.uniform(0.0025, 0.004))
    pores = _soft_dots(h, w, rng.uniform(0, w, n), rng.uniform(0, h, n), 0.9)
    img *= 1 - 0.22 * pores[..., None]
    if hairy:
        hair = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(hair)
        angle = rng.uniform(0, np.pi)
        for _ in range(int(rng.integers(8, 30))):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            a = angle + rng.normal(0, 0.25)
            length = rng.uniform(25, 70)
            bend = rng.normal(0, 6)
            pts = [
                (
                    x + t * length * np.cos(a) - bend * t * t * np.sin(a),
                    y + t * length * np.sin(a) + bend * t * t * np.cos(a),
                )
                for t in np.linspace(0, 1, 6)
            ]
            draw.line(pts, fill=int(rng.uniform(120, 220)), width=1)
        hm = np.asarray(hair.filter(ImageFilter.GaussianBlur(0.5)), np.float32) / 255.0
        img = img * (1 - 0.55 * hm[..., None]) + 35 * 0.55 * hm[..., None]
    # soft light from one side and a faint sheen
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    grad = ((xx / w - 0.5) * np.cos(a) + (yy / h - 0.5) * np.sin(a)) * rng.uniform(0.08, 0.2)
    img *= 1 + grad[..., None]
    sheen = np.clip(_noise(rng, h, w, (3, 4)) - 0.25, 0, None) * 60
    img += sheen[..., None]
    return img + rng.normal(0, 2.5, (h, w, 1)).astype(np.float32)


def _irregular_mask(
    rng: np.random.Generator, h: int, w: int, cx: float, cy: float, r: float, irregular: float
) -> np.ndarray:
    """A soft [0, 1] blob whose border wanders by `irregular` (0 round .. 0.4 very irregular)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = np.arctan2(yy - cy, xx - cx)
    radius = np.full_like(theta, r)
    for k in range(2, 9):
        radius += r * irregular / k**0.7 * rng.normal() * np.cos(k * theta + rng.uniform(0, 6.3))
    dist = np.hypot(xx - cx, yy - cy)
    edge = max(1.2, r * rng.uniform(0.04, 0.12))
    return np.clip((radius - dist) / edge + 0.5, 0, 1)


def lesion(
    rng: np.random.Generator,
    img: np.ndarray,
    kind: str,
    cx: float,
    cy: float,
    r: float,
    faint: float = 0.0,
):
    """Draw one lesion of `kind` (a LESIONS key) onto img (float RGB) in place.

    ``faint`` (0 .. 1) blends the lesion into the skin: the hard cases raters (and models) miss.
    """
    h, w = img.shape[:2]
    x0, x1 = int(max(cx - 2 * r, 0)), int(min(cx + 2 * r, w))
    y0, y1 = int(max(cy - 2 * r, 0)), int(min(cy + 2 * r, h))
    win = img[y0:y1, x0:x1]
    hh, ww = win.shape[:2]
    lx, ly = cx - x0, cy - y0
    if kind in ("naevus", "melanoma"):
        irregular = 0.07 if kind == "naevus" else 0.2
        m = _irregular_mask(rng, hh, ww, lx, ly, r, irregular)[..., None]
        yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        centre = np.clip(1 - np.hypot(xx - lx, yy - ly) / r, 0, 1)[..., None]
        # melanin: brown, darker towards the centre, darker still on fair skin than on deep skin
        light = float(np.mean(win[hh // 2, ww // 2])) / 255
        depth = (0.62 - 0.22 * centre) * (0.75 + 0.35 * (1 - light))
        var = 1 + (0.08 if kind == "naevus" else 0.3) * _noise(rng, hh, ww, (7, 7))[..., None]
        colour = win * depth * var * np.array([0.86, 0.68, 0.58], np.float32)
        if kind == "melanoma":  # several colours: black globules, a blue-grey veil, regression
            n1 = _noise(rng, hh, ww, (5, 5))
            n2 = _noise(rng, hh, ww, (4, 4))
            black = np.clip((n1 - 0.12) * 6, 0, 1)[..., None]
            veil = np.clip((n2 - 0.15) * 5, 0, 1)[..., None]
            regress = np.clip((-n2 - 0.25) * 5, 0, 1)[..., None]
            colour = colour * (1 - 0.7 * black) + np.array([38, 26, 24], np.float32) * 0.7 * black
            colour = colour * (1 - 0.5 * veil) + np.array([88, 92, 110], np.float32) * 0.5 * veil
            pink = win * np.array([1.05, 0.86, 0.86], np.float32)
            colour = colour * (1 - 0.6 * regress) + pink * 0.6 * regress
        m = m * (1 - 0.6 * faint)
        win[:] = win * (1 - m) + colour * m
    elif kind == "psoriasis":
        m = _irregular_mask(rng, hh, ww, lx, ly, r, 0.22)[..., None]
        plaque = win * np.array([1.05, 0.68, 0.68], np.float32) + np.array([25, 0, 5], np.float32)
        flakes = _noise(rng, hh, ww, (int(r / 6) + 3, int(r / 6) + 3))
        scale = np.clip((flakes + 0.05) * 2.5, 0, 1) * np.clip(m[..., 0] * 1.5 - 0.3, 0, 1)
        plaque = plaque * (1 - 0.55 * scale[..., None]) + 228 * 0.55 * scale[..., None]
        m = m * (1 - 0.6 * faint)
        win[:] = win * (1 - m) + plaque * m
    elif kind == "seborrhoeic_keratosis":
        m = _irregular_mask(rng, hh, ww, lx, ly, r, 0.12)[..., None]
        warty = 1 + 0.35 * _noise(rng, hh, ww, (int(r / 2) + 2, int(r / 2) + 2))[..., None]
        tan = np.array([150, 112, 80], np.float32) * (0.55 + 0.2 * rng.random()) * warty
        m = m * (1 - 0.6 * faint)
        win[:] = win * (1 - m) + tan * m
    else:
        raise ValueError(kind)


def _encode(img: np.ndarray | Image.Image, quality: int = 90) -> bytes:
    pil = img if isinstance(img, Image.Image) else Image.fromarray(_u8(img))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


# -- degradations ------------------------------------------------------------------------------


def degrade(
    rng: np.random.Generator, im: Image.Image, kind: str, spot: tuple, mild: float = 0.0
) -> Image.Image:
    """A poor retake of `im`: blurry, bad_light, too_far_away, lesion_covered, ... (spot: lesion).

    ``mild`` (0 .. 1) softens every degradation: borderline retakes that raters (and a model)
    disagree on, from plainly unusable at 0 to nearly acceptable at 1.
    """
    w, h = im.size
    if kind == "blurry":  # out of focus, or shaken: a motion streak
        if rng.random() < 0.5:
            return im.filter(
                ImageFilter.GaussianBlur(float(rng.uniform(2.5, 7)) * (1 - 0.7 * mild))
            )
        a = np.asarray(im, np.float32)
        steps = max(int(rng.integers(8, 22) * (1 - 0.5 * mild)), 3)
        dx, dy = rng.normal(0, 1, 2)
        norm = np.hypot(dx, dy) or 1
        acc = np.zeros_like(a)
        for t in range(steps):
            acc += np.roll(a, (int(t * dy / norm), int(t * dx / norm)), axis=(0, 1))
        return Image.fromarray(_u8(acc / steps)).filter(ImageFilter.GaussianBlur(1.5))
    if kind == "bad_light":  # dark, with a colour cast and amplified sensor noise
        a = np.asarray(im, np.float32) * (rng.uniform(0.16, 0.3) + 0.4 * mild)
        a *= np.array([0.9, 0.95, 1.25], np.float32) if rng.random() < 0.5 else 1.0
        a += rng.normal(0, 3.5, a.shape)
        return Image.fromarray(_u8(a)).filter(ImageFilter.GaussianBlur(0.6))
    if kind == "too_far_away":  # the skin is a small part of a room scene
        scene = room(rng, w, h)
        s = rng.uniform(0.2, 0.32) + 0.22 * mild  # nearer: the skin fills more of the frame
        small = im.resize((int(w * s), int(h * s)), Image.Resampling.BILINEAR)
        x, y = int(rng.uniform(0.05, 1 - s) * w), int(rng.uniform(0.05, 1 - s) * h)
        scene.paste(small, (x, y))
        return scene.filter(ImageFilter.GaussianBlur(0.8))
    if kind == "lesion_covered":  # a plaster over the lesion
        out = im.copy()
        cx, cy, r = spot
        off = mild * r * 1.2  # nearly acceptable: the plaster hides only part of the lesion
        plaster(rng, out, cx + float(rng.uniform(-off, off)), cy + float(rng.uniform(-off, off)), r)
        return out
    if kind == "bad_framing":  # the lesion at the edge, tilted
        shift = rng.uniform(0.3, 0.45) * (1 - 0.35 * mild)
        dx = int((shift if rng.random() < 0.5 else -shift) * w)
        turn = float(rng.uniform(-20, 20)) * (1 - 0.5 * mild)
        shifted = im.rotate(turn, translate=(dx, 0), fillcolor=(28, 26, 30))
        return shifted
    if kind == "low_resolution":
        small = int(rng.integers(45, 85) + 110 * mild)
        return im.resize((small, small * h // w), Image.Resampling.BILINEAR).resize(
            (w, h), Image.Resampling.NEAREST
        )
    raise ValueError(kind)


def plaster(rng: np.random.Generator, im: Image.Image, cx: float, cy: float, r: float) -> None:
    """An adhesive plaster (tan strip with a white pad) over (cx, cy), drawn in place."""
    length, width = r * rng.uniform(4.2, 5.5), r * rng.uniform(2.4, 3.0)
    strip = Image.new("RGBA", (int(length), int(width)), (0, 0, 0, 0))
    d = ImageDraw.Draw(strip)
    d.rounded_rectangle([0, 0, length - 1, width - 1], radius=width / 2, fill=(214, 176, 140, 255))
    pad = length * 0.3
    d.rectangle(
        [length / 2 - pad / 2, 3, length / 2 + pad / 2, width - 4], fill=(244, 240, 232, 255)
    )
    for _ in range(int(length * width / 60)):
        x, y = rng.uniform(0, length), rng.uniform(0, width)
        d.point((x, y), fill=(190, 150, 118, 255))
    strip = strip.rotate(float(rng.uniform(0, 180)), expand=True, resample=Image.Resampling.BICUBIC)
    im.paste(strip, (int(cx - strip.width / 2), int(cy - strip.height / 2)), strip)


def room(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A plain indoor scene: a wall, a floor or table edge, a door frame, soft shadows."""
    wall = np.array(rng.uniform([150, 140, 120], [225, 220, 210]), np.float32)
    a = np.broadcast_to(wall, (h, w, 3)).copy()
    a *= 1 + 0.12 * _noise(rng, h, w, (3, 3))[..., None]
    floor_y = int(rng.uniform(0.6, 0.8) * h)
    floor = np.array(rng.uniform([80, 55, 35], [160, 120, 90]), np.float32)
    a[floor_y:] = floor * (1 + 0.2 * _noise(rng, h - floor_y, w, (2, 12))[..., None])
    x = int(rng.uniform(0.05, 0.3) * w)
    a[:floor_y, x : x + int(0.03 * w)] *= 0.8
    return Image.fromarray(_u8(a + rng.normal(0, 2, a.shape)))


# -- whole photographs -------------------------------------------------------------------------


def skin_photo(spec: DemoImage) -> tuple[Image.Image, tuple[float, float, float]]:
    """The clean close-up of a case: skin of the spec's type, with its lesion if any."""
    rng = np.random.default_rng(spec.extra.get("subject_seed", spec.seed))
    w, h = QUALITY_SIZE
    img = skin(
        rng, w, h, spec.fitzpatrick, hairy=spec.body_site in ("forearm", "lower leg", "thigh")
    )
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    faint = spec.extra.get("subject_difficulty", spec.difficulty)
    r = (rng.uniform(0.07, 0.13) * (1 - 0.4 * faint)) * h if spec.lesion else 0.09 * h
    if spec.lesion:
        lesion(rng, img, spec.lesion, cx, cy, r, faint=faint)
        if spec.lesion == "psoriasis":  # plaques come in groups
            for _ in range(int(rng.integers(1, 4))):
                lesion(rng, img, "psoriasis", *rng.uniform(0.1, 0.9, 2) * (w, h), r * 0.5)
    im = Image.fromarray(_u8(img)).filter(ImageFilter.GaussianBlur(0.5))
    return im, (cx, cy, r)


def no_skin_photo(spec: DemoImage) -> Image.Image:
    """A photograph with nothing of dermatological relevance (a sample photo, or a room)."""
    rng = np.random.default_rng(spec.seed)
    w, h = QUALITY_SIZE
    photos = sample_photos()
    if not photos:
        return room(rng, w, h)
    src = photos[int(rng.integers(len(photos)))]
    sh, sw = src.shape[:2]
    side = int(rng.uniform(0.6, 1.0) * min(sh, sw * h / w))
    y = int(rng.integers(0, sh - side + 1))
    cw = int(side * w / h)
    x = int(rng.integers(0, max(sw - cw, 0) + 1))
    crop = Image.fromarray(src[y : y + side, x : x + cw])
    return crop.resize((w, h), Image.Resampling.BILINEAR)


@cache
def sample_photos() -> tuple[np.ndarray, ...]:
    """scikit-image's bundled non-skin sample photographs (none without scikit-image)."""
    try:
        from skimage import data  # optional: the demo falls back to drawn scenes without it
    except ImportError:
        return ()
    out = []
    for name in ("coffee", "rocket", "chelsea", "brick", "grass", "gravel", "coins", "clock"):
        im = np.asarray(getattr(data, name)())
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(im[..., :3].astype(np.uint8)))
    return tuple(out)


@cache
def face_photo() -> np.ndarray | None:
    """The head crop of scikit-image's astronaut, enlarged (None without scikit-image)."""
    try:
        from skimage import data  # optional: the demo falls back to procedural cheeks without it
    except ImportError:
        return None
    x0, y0, x1, y1 = HEAD
    head = Image.fromarray(np.asarray(data.astronaut())[y0:y1, x0:x1, :3])
    size = (int((x1 - x0) * HEAD_SCALE), int((y1 - y0) * HEAD_SCALE))
    return np.asarray(head.resize(size, Image.Resampling.LANCZOS), np.float32)


def _face_skin_mask(img: np.ndarray) -> np.ndarray:
    """Where the face photo shows skin: skin-coloured pixels inside the face ellipse."""
    h, w = img.shape[:2]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    colour = (r > 120) & (r - g > 25) & (g - b < 38)  # skin, not the blonde hair or the wall
    fx0, fy0, fx1, fy1 = (np.array((166, 54, 282, 196)) - np.array(HEAD[:2] * 2)) * HEAD_SCALE
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy, rx, ry = (fx0 + fx1) / 2, (fy0 + fy1) / 2, (fx1 - fx0) / 2, (fy1 - fy0) / 2
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    m = Image.fromarray(((colour & inside) * 255).astype(np.uint8))
    # close the small holes (highlights, freckles) but keep the eyes, teeth and hairline out
    closed = np.asarray(m.filter(ImageFilter.GaussianBlur(7)), np.float32) > 90
    neck = (
        (r > 110) & (r - g > 12) & (g - b < 40) & (yy > cy) & (np.abs(xx - cx) < rx * 0.8)
    )  # the neck below the face takes the tone too
    m = Image.fromarray((((closed & inside) | neck) * 255).astype(np.uint8))
    return np.asarray(m.filter(ImageFilter.GaussianBlur(3)), np.float32) / 255.0


@cache
def _face_base() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    img = face_photo()
    if img is None:
        return None
    mask = _face_skin_mask(img)
    mean = (img * mask[..., None]).sum((0, 1)) / max(mask.sum(), 1)
    return img, mask, mean


ACNE = {  # per grade: comedones, papules, pustules, nodules (ranges), after the IGA's wording
    1: ((0, 3), (0, 0), (0, 0), (0, 0)),  # clear
    2: ((3, 10), (1, 3), (0, 1), (0, 0)),  # almost clear: rare non-inflammatory, few papules
    3: ((8, 20), (4, 10), (1, 4), (0, 0)),  # mild: some papules and pustules
    4: ((15, 30), (12, 24), (4, 10), (0, 1)),  # moderate: many papules and pustules
    5: ((20, 40), (22, 38), (8, 16), (2, 5)),  # severe: many, with nodules
}


def _spot(img, cx, cy, r, colour, strength, halo=1.8):
    """Add a soft round spot (Gaussian fall-off to `halo` radii) of colour into img in place."""
    h, w = img.shape[:2]
    R = r * halo * 1.6
    x0, x1, y0, y1 = (
        int(max(cx - R, 0)),
        int(min(cx + R + 1, w)),
        int(max(cy - R, 0)),
        int(min(cy + R + 1, h)),
    )
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (r * halo / 2) ** 2))[..., None] * strength
    win = img[y0:y1, x0:x1]
    win[:] = win * (1 - m) + np.asarray(colour, np.float32) * m


def acne(
    rng: np.random.Generator,
    img: np.ndarray,
    regions,
    grade: int,
    tone: np.ndarray,
    k: float,
    mask: np.ndarray | None = None,
):
    """Composite acne lesions of one grade into the skin regions (x0, y0, x1, y1) of img.

    With a skin mask, lesions land only where it is (nearly) 1: never on hair, eyes or the wall.
    """
    counts = [int(rng.integers(lo, hi + 1)) for lo, hi in ACNE[grade]]
    dark = float(np.clip((tone.mean() - 70) / 150, 0, 1))  # 1 for fair skin, 0 for deep
    red = np.array([185, 60, 62], np.float32) * (0.55 + 0.45 * dark) + tone * 0.25 * (1 - dark)

    def place():
        for _ in range(50):
            x0, y0, x1, y1 = regions[int(rng.integers(len(regions)))]
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if mask is None or mask[int(y), int(x)] > 0.9:
                break
        return x, y

    for _ in range(counts[0]):  # comedones: small dark (open) or skin-coloured (closed) dots
        x, y = place()
        c = tone * (0.5 if rng.random() < 0.4 else 1.08)
        _spot(img, x, y, rng.uniform(0.7, 1.2) * k, c, 0.7, halo=1.2)
    for _ in range(counts[3]):  # nodules: large, deep, violaceous
        x, y = place()
        r = rng.uniform(5, 8) * k
        _spot(img, x, y, r, red * np.array([0.85, 0.75, 0.95]), 0.75, halo=2.2)
        _spot(img, x - r * 0.3, y - r * 0.3, r * 0.4, (255, 235, 225), 0.18)
    for _ in range(counts[1] + counts[2]):  # papules; the last counts[2] get a pus-filled head
        x, y = place()
        r = rng.uniform(1.5, 2.6) * k
        _spot(img, x, y, r * 1.3, red * 1.05, 0.22, halo=2.0)  # erythema around it
        _spot(img, x, y, r, red * 0.9, 0.8, halo=1.6)
        _spot(img, x - r * 0.3, y - r * 0.3, r * 0.3, (255, 240, 232), 0.3)  # raised: a sheen
    for _ in range(counts[2]):
        x, y = place()
        r = rng.uniform(1.6, 2.6) * k
        _spot(img, x, y, r * 1.2, red, 0.55, halo=1.8)
        _spot(img, x, y, r * 0.5, (246, 236, 190), 0.95, halo=1.4)


def face_image(spec: DemoImage) -> Image.Image:
    """A face with acne of the spec's grade, recoloured to its Fitzpatrick type."""
    rng = np.random.default_rng(spec.seed)
    base = _face_base()
    target = np.array(FITZPATRICK_TONES[spec.fitzpatrick], np.float32)
    if base is None:  # no scikit-image: a procedural cheek close-up
        w, h = 560, 560
        img = skin(rng, w, h, spec.fitzpatrick, hairy=False)
        acne(rng, img, [(20, 20, w - 20, h - 20)], spec.grade, target, 2.2)
        return Image.fromarray(_u8(img)).filter(ImageFilter.GaussianBlur(0.5))
    src, mask, mean = base
    img = src.copy()
    ratio = target / mean * rng.uniform(0.96, 1.04, 3)
    img = img * (1 - mask[..., None]) + img * ratio * mask[..., None]
    # the enlarged photo is soft: fine skin texture (pores, tone) restores a close-up's grain
    h, w = img.shape[:2]
    n = int(w * h * 0.003)
    pores = _soft_dots(h, w, rng.uniform(0, w, n), rng.uniform(0, h, n), 0.9)
    grain = 1 - 0.16 * pores + 0.05 * _noise(rng, h, w, (24, 24))
    img *= (1 + (grain - 1) * mask)[..., None]
    regions = [tuple((np.array(box) - np.array(HEAD[:2] * 2)) * HEAD_SCALE) for box in FACE_SKIN]
    acne(rng, img, regions, spec.grade, target, HEAD_SCALE * 0.9, mask)
    im = Image.fromarray(_u8(img))
    # a different phone, distance and light each time: crop, flip, brightness
    s = rng.uniform(0.86, 1.0)
    cw, ch = int(w * s), int(h * s)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = im.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a = np.asarray(im, np.float32) * rng.uniform(0.9, 1.08)
    return Image.fromarray(_u8(a + rng.normal(0, 2, a.shape)))


def render(spec: DemoImage) -> bytes:
    """The JPEG bytes of one demo image."""
    if spec.kind == "face":
        return _encode(face_image(spec), 90)
    if spec.kind == "no_skin":
        return _encode(no_skin_photo(spec), 88)
    im, spot = skin_photo(spec)
    rng = np.random.default_rng(spec.seed)
    for kind in spec.explanations:
        im = degrade(rng, im, kind, spot, mild=spec.difficulty)
    return _encode(im, 88)


# -- what the demo projects hold ---------------------------------------------------------------

# One cycle of quality cases: (clean subject, degraded retakes). 13 images per cycle: 5 clean
# lesions, 2 healthy, 1 no skin, 5 poor (blurry 2, dark, too far, covered; sometimes framing or
# resolution instead).
QUALITY_CYCLE = (
    ("lesion", ("blurry",)),
    ("healthy_skin", ()),
    ("lesion", ("bad_light",)),
    ("no_skin", ()),
    ("lesion", ("too_far_away",)),
    ("healthy_skin", ("blurry",)),
    ("lesion", ()),
    ("lesion", ("lesion_covered",)),
)
LESION_CYCLE = ("naevus", "psoriasis", "melanoma", "naevus", "seborrhoeic_keratosis")


SECOND_FLAW = {  # a retake with two flaws: its main one and a plausible companion
    "blurry": ("bad_light", "low_resolution"),
    "bad_light": ("blurry",),
    "too_far_away": ("blurry", "bad_light"),
    "bad_framing": ("blurry",),
    "lesion_covered": ("bad_light",),
    "low_resolution": ("bad_light",),
}


def _retake_flaws(rng: np.random.Generator, what: str) -> tuple[str, ...]:
    """A retake's flaws: its main one, and in one retake out of four a second one."""
    if rng.random() < 0.25:
        others = SECOND_FLAW[what]
        return (what, str(others[int(rng.integers(len(others)))]))
    return (what,)


def quality_specs(count: int, seed: int = 0) -> list[DemoImage]:
    """`count` images for a quality project: clean close-ups and degraded retakes, in cases."""
    rng = np.random.default_rng(seed)
    specs: list[DemoImage] = []
    case = lesions = 0
    while len(specs) < count:
        cls, retakes = QUALITY_CYCLE[case % len(QUALITY_CYCLE)]
        case += 1
        fitz = int(case % 6) + 1
        site = BODY_SITES[int(rng.integers(len(BODY_SITES)))]
        case_id = f"Q{case:03d}"
        subject = int(rng.integers(2**31))
        kind = None
        if cls == "lesion":
            kind = LESION_CYCLE[lesions % len(LESION_CYCLE)]
            lesions += 1
        base = {
            "case_id": case_id,
            "fitzpatrick": fitz,
            "extra": {"subject_seed": subject},
        }
        if cls == "no_skin":
            specs.append(
                DemoImage(
                    f"{case_id}_photo.jpg",
                    subject,
                    body_site="",
                    kind="no_skin",
                    cls="no_skin",
                    **{**base, "fitzpatrick": None},
                )
            )
            continue
        difficulty = float(rng.uniform(0, 0.6))
        base["extra"]["subject_difficulty"] = difficulty  # its retakes show the same lesion
        specs.append(
            DemoImage(
                f"{case_id}_{site.replace(' ', '-')}.jpg",
                subject,
                body_site=site,
                kind="skin",
                cls=cls,
                lesion=kind,
                difficulty=difficulty,
                **base,
            )
        )
        for j, what in enumerate(retakes):
            if what == "blurry" and rng.random() < 0.2:
                what = "low_resolution"
            if what == "too_far_away" and rng.random() < 0.3:
                what = "bad_framing"
            if what == "lesion_covered" and kind is None:
                what = "blurry"
            specs.append(
                DemoImage(
                    f"{case_id}_{site.replace(' ', '-')}_retake{j + 1}.jpg",
                    int(rng.integers(2**31)),
                    body_site=site,
                    kind="skin",
                    cls="poor_quality",
                    lesion=kind,
                    explanations=_retake_flaws(rng, what),
                    difficulty=float(rng.uniform(0.3, 1.0)),
                    **base,
                )
            )
    return specs[:count]


def severity_specs(count: int, seed: int = 0) -> list[DemoImage]:
    """`count` face photographs with acne graded 1-5 (IGA-like), one or two per patient."""
    rng = np.random.default_rng(seed)
    grades = np.resize(np.arange(1, 6), count)
    rng.shuffle(grades)
    specs = []
    patient = seen = 0
    for grade in grades:
        if seen == 0 or seen == 2 or rng.random() < 0.6:  # a second visit now and then
            patient, seen = patient + 1, 0
        seen += 1
        i = len(specs)
        fitz = int(patient % 6) + 1
        specs.append(
            DemoImage(
                f"A{patient:03d}_face_{i + 1:03d}.jpg",
                int(rng.integers(2**31)),
                case_id=f"A{patient:03d}",
                body_site="face",
                fitzpatrick=fitz,
                kind="face",
                grade=int(grade),
                difficulty=float(rng.uniform(0, 0.6)),
            )
        )
    return specs


def manifest_csv(specs: list[DemoImage]) -> str:
    """The import manifest (filename, case_id, body_site, fitzpatrick) of generated images."""
    lines = ["filename,case_id,body_site,fitzpatrick"]
    for s in specs:
        fitz = ROMAN[s.fitzpatrick] if s.fitzpatrick else ""
        lines.append(f"{s.filename},{s.case_id},{s.body_site},{fitz}")
    return "\n".join(lines) + "\n"
