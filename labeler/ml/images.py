"""Decode and validate predict inputs; resize to the backbone's input (Pillow + NumPy, no torch).

The backbone input is a float32 NHWC batch of raw RGB values 0..255 at 224x224; the exported ONNX
graphs do the Lite normalisation (x - 127) / 128 and the layout change themselves, so the server,
the trainer and a browser all feed the same pixels.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import IMAGE_SIZE
from .errors import BadImage

# JPEGs decode at the smallest DCT scale that is still >= 224 px (a 1024x768 photo decodes at
# 256x192 in ~1 ms instead of ~8 ms at full size); training and predict use the same setting.
DECODE_SIDE = IMAGE_SIZE
MAX_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 100_000_000
MIN_SIDE = 16
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

ImageInput = bytes | bytearray | memoryview | Image.Image | np.ndarray | str | Path


def load_image(image: ImageInput, *, max_side: int | None = None) -> Image.Image:
    """Return an upright RGB image, or raise BadImage saying why.

    Accepts encoded bytes, a path, a PIL image or an HxWx3 uint8 array. ``max_side`` lets JPEG
    decode at a reduced scale (libjpeg DCT scaling) when the caller only needs a small image.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise BadImage("an array image must be HxWx3 uint8 RGB")
        _check_size(image.shape[1], image.shape[0])
        return Image.fromarray(image)
    if isinstance(image, Image.Image):
        _check_size(*image.size)
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        try:
            data = Path(image).read_bytes()
        except OSError as exc:
            raise BadImage(f"cannot read image file {image}: {exc.strerror}") from exc
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        raise BadImage(
            f"expected image bytes, a path, a PIL image or an array, got {type(image).__name__}"
        )
    if not data:
        raise BadImage("the file is empty")
    if len(data) > MAX_BYTES:
        raise BadImage(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            # Pillow warns (DecompressionBombWarning) before it errors; we check the size ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            _check_size(*im.size)
            if max_side and im.format == "JPEG":
                im.draft("RGB", (max_side, max_side))
            im.load()
            im = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as exc:
        raise BadImage(f"the image is too large (at most {MAX_PIXELS:,} pixels)") from exc
    except UnidentifiedImageError as exc:
        raise BadImage("the file is not an image Pillow can read") from exc
    except _DECODE_ERRORS as exc:
        raise BadImage(f"the image cannot be decoded ({exc})") from exc
    return im.convert("RGB")


def _check_size(w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise BadImage(f"the image is too large ({w}x{h} pixels, at most {MAX_PIXELS:,})")
    if min(w, h) < MIN_SIDE:
        raise BadImage(f"the image is too small ({w}x{h} pixels, at least {MIN_SIDE} per side)")


def to_input(im: Image.Image, *, flip: bool = False) -> np.ndarray:
    """The whole image squashed to 224x224 (no crop: framing is what the quality model judges)."""
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    small = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(small, dtype=np.float32)


def crop_input(
    arr: np.ndarray, box: tuple[int, int, int, int], roll: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """A patch (x0, y0, x1, y1) of an HxWx3 uint8 array, circularly shifted by roll, at 224x224."""
    x0, y0, x1, y1 = box
    patch = arr[y0:y1, x0:x1]
    if roll != (0, 0):
        patch = np.roll(patch, shift=(roll[1], roll[0]), axis=(0, 1))
    small = Image.fromarray(np.ascontiguousarray(patch)).resize(
        (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR
    )
    return np.asarray(small, dtype=np.float32)
