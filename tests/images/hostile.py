"""Build normal and hostile image and archive files in memory, at test time."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image


def photo(w: int = 64, h: int = 48, mode: str = "RGB") -> Image.Image:
    """A smooth gradient image (compresses well, decodes fast)."""
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(rgb)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def jpeg(w: int = 64, h: int = 48, **params: object) -> bytes:
    return encode(photo(w, h), "JPEG", quality=90, **params)


def png(w: int = 64, h: int = 48, **params: object) -> bytes:
    return encode(photo(w, h), "PNG", **params)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb_header(w: int = 50_000, h: int = 50_000) -> bytes:
    """A tiny PNG whose header declares a huge canvas (no pixel data worth decoding)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_with_exif_segments(n_segments: int, segment_size: int = 60_000) -> bytes:
    """A JPEG with an EXIF block spread over several APP1 segments (Pillow joins them)."""
    base = jpeg()
    exif = Image.Exif()
    exif[0x010E] = "x"  # ImageDescription
    first = b"Exif\0\0" + exif.tobytes()
    segments = [first + b"\0" * (segment_size - len(first))]
    segments += [b"Exif\0\0" + b"\0" * segment_size for _ in range(n_segments - 1)]
    app1 = b"".join(b"\xff\xe1" + struct.pack(">H", len(s) + 2) + s for s in segments)
    return base[:2] + app1 + base[2:]


def png_with_huge_exif(n_bytes: int = 200_000) -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "x" * n_bytes
    return png(exif=exif.tobytes())


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return out.getvalue()


def zip_bomb(uncompressed: int) -> bytes:
    """One entry of zeros: tiny on disk, ``uncompressed`` bytes when inflated."""
    return zip_bytes({"bomb.jpg": b"\0" * uncompressed})


def zip_lying_sizes(data: bytes, declared: int) -> bytes:
    """A zip whose headers declare ``declared`` bytes for an entry that inflates to more."""
    raw = bytearray(zip_bytes({"liar.jpg": data}))
    local = raw.find(b"PK\x03\x04")
    struct.pack_into("<I", raw, local + 22, declared)
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, declared)
    return bytes(raw)


def flat_png(w: int, h: int, mode: str = "RGBA", pixel: bytes | None = None) -> bytes:
    """A real w x h PNG of one colour, compressed row by row: small, and never held decoded here.

    The default RGBA pixel is half transparent (real transparency).
    """
    colour_type, channels = {"L": (0, 1), "RGB": (2, 3), "LA": (4, 2), "RGBA": (6, 4)}[mode]
    pixel = pixel or bytes([180, 120, 100, 128][:channels])
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    row = b"\0" + pixel * w
    idat = _deflate_rows(row, h)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def float_tiff(w: int, h: int) -> bytes:
    """A real w x h 32-bit floating-point TIFF of zeros in one deflated strip (Pillow mode F)."""
    data = _deflate_rows(bytes(4 * w), h)
    short, long_ = 3, 4
    tags = [
        (256, long_, w),  # ImageWidth
        (257, long_, h),  # ImageLength
        (258, short, 32),  # BitsPerSample
        (259, short, 8),  # Compression: deflate
        (262, short, 1),  # PhotometricInterpretation: BlackIsZero
        (273, long_, 0),  # StripOffsets (filled in below)
        (277, short, 1),  # SamplesPerPixel
        (278, long_, h),  # RowsPerStrip: the whole image in one strip
        (279, long_, len(data)),  # StripByteCounts
        (339, short, 3),  # SampleFormat: IEEE float
    ]
    offset = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = offset if tag == 273 else value
        packed = struct.pack("<H2x", value) if kind == short else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data


def _deflate_rows(row: bytes, h: int, rows_per_call: int = 64) -> bytes:
    z = zlib.compressobj(1)
    block = row * rows_per_call
    parts = [z.compress(block) for _ in range(h // rows_per_call)]
    parts.append(z.compress(row * (h % rows_per_call)))
    return b"".join(parts) + z.flush()
