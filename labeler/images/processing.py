"""Validate an uploaded photo and derive its display image and thumbnail.

Pure: bytes in, a ProcessedImage out. No Flask, no database, no file system.

Policy decisions (documented here because the import service relies on them):

* Formats: JPEG (including MPO, reported as JPEG), PNG, WEBP and TIFF.
* Animated or multi-frame files (APNG, animated WebP, multi-page TIFF, MPO) are
  accepted and the first frame is used.
* Colour modes: what cameras, phones and dermatoscopes produce. 8-bit RGB is used as
  is; grayscale (L), palette (P), bilevel (1), RGBA/LA with transparency and CMYK or
  YCbCr are converted to RGB (RGBA when the transparency is real); 16-bit RGB(A) is
  reduced to 8 bits by the decoder. 16-bit grayscale, 32-bit integer and floating-point
  images (I;16*, I, F: scientific and medical-imaging data) and Lab/HSV are refused: they
  need a choice of value range to be shown at all, none of which is faithful to skin
  colour, and they are what blew up memory (a float 10000x10000 TIFF took 2.7 GB).
* Memory: decoding is bounded by bytes, not pixels alone. Before anything is decoded,
  the bytes it will take (the decoded image as Pillow stores it, the RGB copy made from
  it, and each decoder's own full-size buffers: libwebp's canvas, a progressive JPEG's
  coefficients, a TIFF strip or tile) are worked out from the header and checked
  against ``max_decode_bytes`` (see ``decode_bytes``).
* The display image is RGB JPEG, or RGBA PNG when the source has real
  transparency; the thumbnail is always JPEG (alpha flattened onto white).
* Derivatives carry no EXIF, GPS or XMP. An ICC profile is kept when it
  describes the colour space of the output (RGB); a CMYK profile is dropped
  because the pixels are converted.
* For JPEG the decoder scales by 1/2, 1/4 or 1/8 while decoding (libjpeg DCT
  scaling). When that lands within ``display_min_fraction`` of ``display_max``
  the scaled decode is used as is, so a 4000x3000 photo gives a 2000x1500
  display image from a half-size decode instead of a full decode plus resize.
* A single-scan JPEG within ``display_max`` that is upright RGB without an ICC profile is its own
  display copy without its metadata segments, cut at its end-of-image marker (see
  ``_clean_jpeg_prefix``: the same entropy-coded data, so the same pixels); it is then
  decoded DCT-scaled to the thumbnail's size only. libjpeg Huffman-decodes every block at any
  scale, so truncated or corrupt data is refused exactly as a full decode refuses it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from PIL import Image, ImageFile, UnidentifiedImageError

logger = logging.getLogger(__name__)

MiB = 1024 * 1024

# Errors Pillow raises for malformed or unsupported data while parsing or decoding.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)

_EXTENSIONS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
# Canonical file extension for each accepted format.
FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif"}

# EXIF orientation -> the transposition that displays the image upright
# (the same table as PIL.ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112


class ImageRejected(Exception):
    """The file cannot be imported; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    """Limits and output settings for process_image (and the archive readers)."""

    max_file_bytes: int = 50 * MiB
    max_pixels: int = 100_000_000
    # Peak memory of decoding one file (decode_bytes); 256 MB is a 64 MP RGB PNG or TIFF, a 32 MP
    # RGBA PNG, an 85 MP progressive JPEG, any baseline JPEG up to the pixel limit.
    max_decode_bytes: int = 256 * MiB
    max_exif_bytes: int = 64 * 1024
    max_icc_bytes: int = 1 * MiB
    allowed_formats: frozenset[str] = field(
        default_factory=lambda: frozenset({"JPEG", "PNG", "WEBP", "TIFF"})
    )
    display_max: int = 2048
    thumb_max: int = 256
    display_quality: int = 88
    thumb_quality: int = 80
    # JPEG only: accept a DCT-scaled decode whose long edge is at least this
    # fraction of display_max rather than decoding larger and resizing.
    # 1.0 always gives exactly display_max for images larger than it.
    display_min_fraction: float = 0.9
    # Archive (zip) guards used by labeler.images.sources.
    max_archive_bytes: int = 20 * 1024 * MiB
    max_archive_entries: int = 100_000


DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True)
class ProcessedImage:
    """A validated image: hash and size of the original plus its derivatives."""

    sha256: str
    width: int
    height: int
    format: str
    display_bytes: bytes
    display_size: tuple[int, int]
    display_mime: str
    thumb_bytes: bytes
    thumb_size: tuple[int, int]

    @property
    def original_ext(self) -> str:
        """Canonical extension of the original, e.g. "jpg"."""
        return FORMAT_EXTENSIONS[self.format]

    @property
    def display_ext(self) -> str:
        """Extension of the display image: "jpg" or "png"."""
        return "png" if self.display_mime == "image/png" else "jpg"


def process_image(
    data: bytes, filename: str, *, limits: ImageLimits = DEFAULT_LIMITS
) -> ProcessedImage:
    """Validate ``data`` (named ``filename``) and build its display image and thumbnail."""
    if not data:
        raise ImageRejected("empty file")
    if len(data) > limits.max_file_bytes:
        raise ImageRejected(
            f"file too large: {_mb(len(data))} exceeds the {_mb(limits.max_file_bytes)} limit"
        )
    sha256 = hashlib.sha256(data).hexdigest()
    _check_header_size(data, limits)

    # Pillow warns (DecompressionBombWarning) above its own global MAX_IMAGE_PIXELS and
    # about odd metadata. We enforce our own pixel limit before decoding instead of
    # changing the global, so those warnings are only noise here. catch_warnings is
    # process-wide before Python 3.14; the worst a concurrent thread can see is these
    # same warnings ignored.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        try:
            return _process(data, filename, sha256, limits)
        except Image.DecompressionBombError as e:
            # Only reachable when limits.max_pixels is above Pillow's own hard limit.
            raise ImageRejected(
                f"image too large: exceeds the {limits.max_pixels / 1e6:g} megapixel limit"
            ) from e


def _process(data: bytes, filename: str, sha256: str, limits: ImageLimits) -> ProcessedImage:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone flipped the global; truncated uploads would be silently padded.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must be False")
    formats = sorted(limits.allowed_formats)
    try:
        im = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError as e:
        known = _sniff_unsupported(data)
        raise ImageRejected(f"unsupported format {known}" if known else "not an image") from e
    except _DECODE_ERRORS as e:
        raise ImageRejected(f"corrupt image header: {e}") from e

    with im:
        fmt = "JPEG" if im.format == "MPO" else im.format
        if fmt not in limits.allowed_formats:
            raise ImageRejected(f"unsupported format {im.format}")
        _check_extension(filename, fmt)
        width, height = im.size
        if width * height > limits.max_pixels:
            raise _too_large(im.size, limits)
        _check_mode(im)
        passthrough = None
        if fmt == "JPEG":
            passthrough = _passthrough(im, data, limits)
            if passthrough is not None:
                # the file is its own display copy: decode at the thumbnail's scale only
                _draft(im, limits.thumb_max, 1.0)
            elif max(width, height) > limits.display_max:
                _draft(im, limits.display_max, limits.display_min_fraction)
        need = decode_bytes(im, fmt, (width, height), limits.display_max)
        if need > limits.max_decode_bytes:
            raise _too_much_memory((width, height), need, limits)
        # Decodes running at once in this process share the budget: a worker's threads wait for
        # each other instead of multiplying the peak.
        with _BUDGET.hold(need, limits.max_decode_bytes):
            return _derive(im, fmt, sha256, (width, height), limits, passthrough)


def _derive(
    im: Image.Image,
    fmt: str,
    sha256: str,
    size: tuple[int, int],
    limits: ImageLimits,
    passthrough: bytes | None = None,
) -> ProcessedImage:
    """Decode the checked image and build its display image and thumbnail.

    ``passthrough``: the JPEG's own bytes are the display copy (see ``_passthrough``); ``im`` is then
    a DCT-scaled decode for the thumbnail, which still reads every entropy-coded byte of the file, so
    truncated or corrupt data is refused exactly as by a full decode.
    """
    width, height = size
    try:
        im.load()
    except _DECODE_ERRORS as e:
        if "truncated" in str(e):
            raise ImageRejected("truncated image") from e
        raise ImageRejected(f"corrupt image data: {e}") from e

    # Metadata is read after load(): PNG may carry eXIf/iCCP chunks after IDAT.
    exif_len = len(im.info.get("exif") or b"")
    if exif_len > limits.max_exif_bytes:
        raise ImageRejected(
            f"EXIF block too large ({exif_len} bytes, limit {limits.max_exif_bytes})"
        )
    icc = im.info.get("icc_profile") or None
    if icc is not None and len(icc) > limits.max_icc_bytes:
        raise ImageRejected(
            f"ICC profile too large ({len(icc)} bytes, limit {limits.max_icc_bytes})"
        )
    transpose = _ORIENTATION.get(_orientation(im))
    if transpose in (
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
    ):
        width, height = height, width

    if icc is not None and _icc_colour_space(icc) != b"RGB ":
        icc = None
    if passthrough is not None:
        # RGB, upright, no ICC profile and within display_max: checked by _passthrough before decoding
        thumb = _fit(im, limits.thumb_max, Image.Resampling.BILINEAR, reducing_gap=1.0)
        return ProcessedImage(
            sha256=sha256,
            width=width,
            height=height,
            format=fmt,
            display_bytes=passthrough,
            display_size=(width, height),
            display_mime="image/jpeg",
            thumb_bytes=_encode(thumb, "JPEG", None, quality=limits.thumb_quality),
            thumb_size=thumb.size,
        )

    display = _to_display_mode(im)
    # Resize first, then transpose: the orientation is the same at any scale and
    # transposing the smaller image is cheaper.
    display = _fit(display, limits.display_max, Image.Resampling.BICUBIC)
    if transpose is not None:
        display = display.transpose(transpose)
    display.info = {}

    has_alpha = display.mode == "RGBA"
    thumb_src = _flatten(display) if has_alpha else display
    # a thumbnail box-reduces by the whole integer factor first (reducing_gap 1): a 512 px image's
    # 256 px thumbnail is one box average (0.2 ms), not a bilinear pass over every pixel (1 ms)
    thumb = _fit(thumb_src, limits.thumb_max, Image.Resampling.BILINEAR, reducing_gap=1.0)

    if has_alpha:
        display_bytes = _encode(display, "PNG", icc, compress_level=3)
        display_mime = "image/png"
    else:
        display_bytes = _encode(display, "JPEG", icc, quality=limits.display_quality)
        display_mime = "image/jpeg"
    thumb_bytes = _encode(thumb, "JPEG", icc, quality=limits.thumb_quality)

    return ProcessedImage(
        sha256=sha256,
        width=width,
        height=height,
        format=fmt,
        display_bytes=display_bytes,
        display_size=display.size,
        display_mime=display_mime,
        thumb_bytes=thumb_bytes,
        thumb_size=thumb.size,
    )


class _DecodeBudget:
    """Bytes held by the decodes running in this process (threads of one worker)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._used = 0

    @contextmanager
    def hold(self, need: int, limit: int) -> Iterator[None]:
        with self._cond:
            # One decode always runs (need was checked against the limit on its own).
            self._cond.wait_for(lambda: self._used == 0 or self._used + need <= limit)
            self._used += need
        try:
            yield
        finally:
            with self._cond:
                self._used -= need
                self._cond.notify_all()


_BUDGET = _DecodeBudget()


def _mb(n: int) -> str:
    return f"{n / MiB:.1f} MB"


def _check_extension(filename: str, fmt: str) -> None:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if not suffix:
        return
    if _EXTENSIONS.get(suffix) != fmt:
        raise ImageRejected(f"extension {suffix} does not match the {fmt} content")


def _too_large(size: tuple[int, int], limits: ImageLimits) -> ImageRejected:
    return ImageRejected(
        f"image too large: {size[0]}x{size[1]} pixels exceeds the "
        f"{limits.max_pixels / 1e6:g} megapixel limit"
    )


def _too_much_memory(size: tuple[int, int], need: int, limits: ImageLimits) -> ImageRejected:
    return ImageRejected(
        f"image too large to process: {size[0]}x{size[1]} pixels would need {_mb(need)} of "
        f"memory; the limit is {_mb(limits.max_decode_bytes)}. Save a smaller copy, or a "
        "standard (not progressive) JPEG"
    )


def _check_header_size(data: bytes, limits: ImageLimits) -> None:
    """Check the canvas size of PNG and WebP before Pillow sees them.

    Pillow's WebP plugin allocates the canvas while opening, so WebP's memory is
    checked here too; for PNG this gives a precise message for headers beyond
    Pillow's own hard limit. JPEG and TIFF headers are only parsed (nothing
    allocated) by Image.open, so their size is checked on the opened image.
    """
    size = None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        size = struct.unpack_from(">II", data, 16)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
            w, h = struct.unpack_from("<HH", data, 26)
            size = w & 0x3FFF, h & 0x3FFF
        elif chunk == b"VP8X":
            size = (
                int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1,
            )
        elif chunk == b"VP8L" and data[20] == 0x2F:
            bits = int.from_bytes(data[21:25], "little")
            size = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if size is None:
        return
    if size[0] * size[1] > limits.max_pixels:
        raise _too_large(size, limits)
    if data[:4] == b"RIFF":  # WebP: the decoder's canvases are allocated while opening
        need = size[0] * size[1] * (_WEBP_DECODER_BYTES + MODE_BYTES["RGBA"])
        if need > limits.max_decode_bytes:
            raise _too_much_memory(size, need, limits)


_OTHER_MAGIC = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"%PDF": "PDF",
}
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}


def _sniff_unsupported(data: bytes) -> str | None:
    """Name a common but unsupported format, for a more helpful rejection."""
    for magic, name in _OTHER_MAGIC.items():
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    return None


def _passthrough(im: ImageFile.ImageFile, data: bytes, limits: ImageLimits) -> bytes | None:
    """The opened JPEG's own bytes, cut at its end-of-image marker, if they can be its display copy.

    A small (within display_max), upright RGB single-scan JPEG without an ICC profile qualifies; its
    metadata is left out (see ``_clean_jpeg_prefix``). Pillow parses every segment before the scan
    while opening, so the orientation and the profile are known before decoding.
    """
    if im.mode != "RGB" or max(im.size) > limits.display_max:
        return None
    if "icc_profile" in im.info or _orientation(im) != 1:
        return None
    return _clean_jpeg_prefix(data)


def _draft(im: ImageFile.ImageFile, target: int, min_fraction: float) -> None:
    """Ask libjpeg to scale by 1/2, 1/4 or 1/8 while decoding, when that is enough.

    The largest scale whose long edge is still at least ``target * min_fraction`` is taken. libjpeg
    still reads (Huffman-decodes) every entropy-coded byte; only the inverse DCT, upsampling and
    colour conversion run at the smaller size.
    """
    w, h = im.size
    long_edge = max(w, h)
    if long_edge <= target:
        return
    floor = target * min_fraction
    for scale in (8, 4, 2):
        if math.ceil(long_edge / scale) >= floor:
            break
    else:
        return
    im.draft("RGB", (max(1, w // scale), max(1, h // scale)))


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS as e:
        # Unreadable EXIF is common in otherwise fine phone photos: treat as upright.
        logger.info("ignoring unreadable EXIF: %s", e)
        return 1
    return value if isinstance(value, int) else 1


# Measured: libwebp's two RGBA canvases and its own buffers, and the frame bytes Pillow copies.
_WEBP_DECODER_BYTES = 16
# Bytes per pixel of each accepted mode as Pillow stores it (multi-band modes take 4).
MODE_BYTES = {
    "RGB": 4,
    "RGBA": 4,
    "RGBX": 4,
    "RGBa": 4,
    "CMYK": 4,
    "YCbCr": 4,
    "LA": 4,
    "La": 4,
    "PA": 4,
    "L": 1,
    "P": 1,
    "1": 1,
}
_REFUSED_MODES = {
    "I;16": "16-bit grayscale",
    "I;16L": "16-bit grayscale",
    "I;16B": "16-bit grayscale",
    "I;16N": "16-bit grayscale",
    "I": "32-bit integer",
    "F": "floating-point",
    "LAB": "Lab colour",
    "HSV": "HSV colour",
}


def _check_mode(im: Image.Image) -> None:
    if im.mode in MODE_BYTES:
        return
    kind = _REFUSED_MODES.get(im.mode, f"{im.mode} colour mode")
    raise ImageRejected(
        f"{kind} images are not supported: save the photo as 8-bit colour JPEG, PNG or TIFF"
    )


def decode_bytes(
    im: Image.Image,
    fmt: str,
    full_size: tuple[int, int],
    display_max: int = DEFAULT_LIMITS.display_max,
) -> int:
    """Peak bytes that decoding and converting the opened (not yet loaded) image will hold.

    ``im.size`` is the size it decodes to (a JPEG draft may be smaller than ``full_size``). Two
    phases, the larger counts:

    * decoding: the image as Pillow stores it, plus the buffers a decoder holds for the whole image
      (libwebp's canvases and the frame bytes Pillow copies out of them; a progressive JPEG's DCT
      coefficients; a TIFF strip or tile), freed when load() returns;
    * converting: the decoded image (still held), the RGB(A) copy the display image is made from
      (none for RGB; RGBA gets either an RGB copy, when opaque, or the premultiplied copy Pillow's
      resize makes, when transparent; LA, PA and transparent P get both), the resize's
      intermediate (the new width by the old height) and its output.

    tests/images/test_decode_memory.py checks the measured peak against it, format by format.
    """
    w, h = im.size
    px = w * h
    stored = px * MODE_BYTES[im.mode]
    fw, fh = full_size
    decoder = 0
    if fmt == "WEBP":
        decoder = fw * fh * _WEBP_DECODER_BYTES
    elif fmt == "JPEG" and im.info.get("progressive"):
        decoder = _jpeg_coefficient_bytes(im, fw, fh)
    elif fmt == "TIFF":
        decoder = _tiff_buffer_bytes(im, fw, fh)
    transparency = "transparency" in im.info
    resized = max(w, h) > display_max
    copy = 0 if im.mode == "RGB" and not transparency else px * 4
    if resized and im.mode != "RGBA" and (transparency or im.mode in ("LA", "La", "PA", "RGBa")):
        copy += px * 4  # converted to RGBA, then premultiplied for the resize
    resize = 0
    if resized:  # the horizontal pass's output (new width x old height), then the result
        scale = display_max / max(w, h)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        resize = (new_w * h + new_w * new_h) * 4
    return max(stored + decoder, stored + copy + resize)


def _jpeg_coefficient_bytes(im: Image.Image, w: int, h: int) -> int:
    """A progressive JPEG keeps every DCT coefficient (64 x 2 bytes per 8x8 block) until the end."""
    layers = getattr(im, "layer", None) or [(0, 1, 1, 0)] * len(im.getbands())
    hmax = max(layer[1] for layer in layers) or 1
    vmax = max(layer[2] for layer in layers) or 1
    blocks = sum(
        math.ceil(w * layer[1] / (8 * hmax)) * math.ceil(h * layer[2] / (8 * vmax))
        for layer in layers
    )
    return blocks * 128


def _tiff_buffer_bytes(im: Image.Image, w: int, h: int) -> int:
    """libtiff reads a whole strip (or tile) of raw samples at a time; one strip may be the image."""
    tags = getattr(im, "tag_v2", {})
    bits = tags.get(258, (8,))
    bits_per_pixel = sum(bits) if isinstance(bits, tuple) else int(bits)
    samples = int(tags.get(277, 1))
    if isinstance(bits, tuple) and len(bits) < samples:
        bits_per_pixel = bits[0] * samples
    if 322 in tags and 323 in tags:  # tiled
        area = int(tags[322]) * int(tags[323])
    else:
        area = w * min(int(tags.get(278, h)), h)
    return math.ceil(area * bits_per_pixel / 8)


def _to_display_mode(im: Image.Image) -> Image.Image:
    """Convert an accepted mode to RGB, or RGBA when there is real transparency."""
    mode = im.mode
    try:
        if mode in ("RGB", "RGBA") and "transparency" not in im.info:
            pass  # used as is: a copy of a 12 MP image costs more than the thumbnail
        elif mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode in ("LA", "PA", "RGBa", "La") or "transparency" in im.info:
            im = im.convert("RGBA")
        else:
            im = im.convert("RGB")
    except ValueError as e:
        raise ImageRejected(f"unsupported colour mode {mode}") from e
    if im.mode == "RGBA" and im.getextrema()[3][0] == 255:
        im = im.convert("RGB")  # fully opaque: the alpha channel carries nothing
    return im


def _flatten(im: Image.Image) -> Image.Image:
    background = Image.new("RGB", im.size, (255, 255, 255))
    background.paste(im, mask=im.getchannel("A"))
    return background


# segments a passed-through JPEG keeps: start of frame (baseline, extended, progressive; no
# arithmetic or lossless), Huffman and quantization tables, restart interval, JFIF's APP0
_PLAIN_JPEG_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC4, 0xDB, 0xDD, 0xE0})
# segments it leaves out: APP1-APP13 and APP15 (EXIF, XMP, ICC, MPF, IPTC, ...) and comments. libjpeg
# skips them unread, so the pixels do not change; APP14 (Adobe) says how to convert the colours and
# is not dropped (such a file is re-encoded), nor is anything unknown.
_DROPPED_JPEG_MARKERS = frozenset({*range(0xE1, 0xEE), 0xEF, 0xFE})
# in entropy-coded data: 0xFF that is neither a stuffed byte (0xFF 0x00) nor a restart marker
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _clean_jpeg_prefix(data: bytes) -> bytes | None:
    """The JPEG's pixels as a JPEG of their own: its segments without metadata, up to its end of image.

    Only a single-scan JPEG whose segments before the scan are frame, tables, restart interval, JFIF
    (without a thumbnail) or metadata qualifies. The metadata segments (EXIF, XMP, ICC, IPTC,
    comments) are left out and whatever follows the end-of-image marker (another file appended, a
    payload) is cut off; with nothing to leave out, this is the file's own prefix. None: re-encode.
    """
    if data[:2] != b"\xff\xd8":
        return None
    pos, n = 2, len(data)
    kept: list[bytes] = [b"\xff\xd8"]
    dropped = False
    while True:
        if pos + 4 > n or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return None
        if marker == 0xDA:  # start of scan: the entropy-coded data follows its header
            scan = pos
            pos += 2 + length
            break
        if marker in _DROPPED_JPEG_MARKERS:
            dropped = True
            pos += 2 + length
            continue
        if marker not in _PLAIN_JPEG_MARKERS:
            return None
        if marker == 0xE0 and (
            length != 16
            or data[pos + 4 : pos + 9] != b"JFIF\x00"
            or data[pos + 16 : pos + 18] != b"\x00\x00"
        ):
            # APP0 that is not JFIF, JFIF carrying a thumbnail of its own, or bytes past JFIF's 16
            # (libjpeg ignores them, so they could carry any text into the display copy)
            return None
        kept.append(data[pos : pos + 2 + length])
        pos += 2 + length
    # in entropy-coded data 0xFF is followed by 0x00 (a stuffed byte) or a restart marker; the first
    # other marker must be the end of the image (another scan, or tables between scans: re-encode)
    while True:
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            return None
        pos = found.start()
        nxt = data[pos + 1]
        if nxt == 0xFF:  # a fill byte before a marker
            pos += 1
            continue
        if nxt != 0xD9:
            return None
        return b"".join([*kept, data[scan : pos + 2]]) if dropped else data[: pos + 2]


def _fit(
    im: Image.Image, max_edge: int, resample: Image.Resampling, reducing_gap: float = 2.0
) -> Image.Image:
    """Downscale to fit max_edge; Pillow's resize filters are antialiased at any scale and
    reducing_gap lets it box-reduce by an integer factor first, which is much faster."""
    w, h = im.size
    if max(w, h) <= max_edge:
        return im
    scale = max_edge / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(size, resample, reducing_gap=reducing_gap)


def _icc_colour_space(icc: bytes) -> bytes:
    return icc[16:20]


def _encode(im: Image.Image, fmt: str, icc: bytes | None, **params: object) -> bytes:
    out = io.BytesIO()
    if icc is not None:
        params["icc_profile"] = icc
    im.save(out, fmt, **params)
    return out.getvalue()
