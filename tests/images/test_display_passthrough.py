"""A small, upright JPEG carrying nothing but its pixels is its own display copy (no re-encoding), cut at
its end-of-image marker; anything with metadata, appended data it cannot cut, another scan, an
orientation or a size over the display limit is re-encoded as before (issue 14: import CPU)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labeler.images.processing import ImageRejected, process_image


def jpeg(size=(512, 384), **save) -> bytes:
    rng = np.random.default_rng(3)
    pixels = np.clip(
        np.array([200, 150, 130]) + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255
    ).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_a_plain_small_jpeg_is_its_own_display_copy():
    data = jpeg()
    p = process_image(data, "a.jpg")
    assert p.display_bytes == data and p.display_mime == "image/jpeg"
    assert p.display_size == (512, 384) and p.thumb_size == (256, 192)


def test_bytes_after_the_end_of_image_are_cut_off():
    data = jpeg()
    payload = b"PK\x03\x04 a zip appended after the image <script>alert(1)</script>"
    p = process_image(data + payload, "a.jpg")
    assert p.display_bytes == data
    assert payload not in p.display_bytes
    assert (pixels(p.display_bytes) == pixels(data)).all()


def exif_of(camera: str) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = camera
    return exif.tobytes()


@pytest.mark.parametrize(
    ("what", "save"),
    [
        ("a comment", {"comment": b"secret patient name"}),
        ("EXIF", {"exif": exif_of("PatientCam")}),
        ("an ICC profile", {"icc_profile": b"\0" * 128 + b"not really an ICC profile"}),
        ("another scan (progressive)", {"progressive": True}),
    ],
)
def test_anything_beyond_pixels_is_re_encoded(what, save):
    data = jpeg(**save)
    p = process_image(data, "a.jpg")
    assert p.display_bytes != data, what
    assert b"secret patient name" not in p.display_bytes and b"PatientCam" not in p.display_bytes
    # the same picture all the same (re-encoded, so close, not equal)
    assert np.abs(pixels(p.display_bytes).astype(int) - pixels(data).astype(int)).mean() < 3


def test_an_oriented_or_large_jpeg_is_re_encoded():
    exif = Image.Exif()
    exif[0x0112] = 6  # held sideways
    p = process_image(jpeg(exif=exif.tobytes()), "a.jpg")
    assert p.display_size == (384, 512)
    big = jpeg(size=(2400, 1800))
    p = process_image(big, "big.jpg")
    assert p.display_bytes != big and max(p.display_size) <= 2048


def test_a_truncated_jpeg_is_still_refused():
    data = jpeg()
    with pytest.raises(ImageRejected):
        process_image(data[: len(data) // 2], "a.jpg")


def test_a_jfif_thumbnail_of_its_own_is_re_encoded():
    data = bytearray(jpeg())
    assert data[6:11] == b"JFIF\x00"
    # APP0 with a 1x1 thumbnail: the segment grows by 3 bytes of RGB
    length = int.from_bytes(data[4:6], "big")
    app0 = data[2 : 4 + length]
    app0[2:4] = (length + 3).to_bytes(2, "big")
    app0[16:18] = b"\x01\x01"  # Xthumbnail, Ythumbnail
    doctored = bytes(data[:2] + app0 + b"\x10\x20\x30" + data[4 + length :])
    p = process_image(doctored, "a.jpg")
    assert p.display_bytes != doctored
