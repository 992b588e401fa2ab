"""A small, upright JPEG is its own display copy (no re-encoding) without its metadata segments, cut at
its end-of-image marker; a profile, an Adobe or unknown segment, appended data it cannot cut, another
scan, an orientation or a size over the display limit is re-encoded as before (issue 14: import CPU)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labeler.images.processing import ImageRejected, process_image


def jpeg(size=(512, 384), seed=3, **save) -> bytes:
    rng = np.random.default_rng(seed)
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
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 30.0)  # GPS latitude
    return exif.tobytes()


def segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big") + body


def with_segments(data: bytes, *segments: bytes) -> bytes:
    """The JPEG with segments inserted after its JFIF header."""
    after_app0 = 4 + int.from_bytes(data[4:6], "big")
    return data[:after_app0] + b"".join(segments) + data[after_app0:]


def markers(data: bytes) -> list[int]:
    """The markers of the segments before the scan, and the scan's."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        out.append(data[pos + 1])
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return [*out, 0xDA]


SECRETS = (b"PatientCam", b"secret patient name", b"Jane Doe, MRN 123")


@pytest.mark.parametrize(
    "what",
    ["EXIF with GPS", "a comment", "XMP", "IPTC", "all of them"],
)
def test_metadata_segments_are_left_out_and_the_pixels_kept(what):
    plain = jpeg()
    xmp = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>Jane Doe, MRN 123</x:xmpmeta>")
    iptc = segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0bJane Doe, MRN 123")
    comment = segment(0xFE, b"secret patient name")
    exif = segment(0xE1, b"Exif\x00\x00" + exif_of("PatientCam"))
    data = {
        "EXIF with GPS": with_segments(plain, exif),
        "a comment": with_segments(plain, comment),
        "XMP": with_segments(plain, xmp),
        "IPTC": with_segments(plain, iptc),
        "all of them": with_segments(plain, exif, xmp, iptc, comment),
    }[what]
    p = process_image(data + b"appended", "a.jpg")
    # the same file as one saved without them: the same tables, frame and entropy-coded data
    assert p.display_bytes == plain, what
    assert not any(secret in p.display_bytes for secret in SECRETS)
    assert set(markers(p.display_bytes)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}
    assert (pixels(p.display_bytes) == pixels(data)).all()
    with Image.open(io.BytesIO(p.display_bytes)) as im:
        assert not im.getexif() and not set(im.info) & {"exif", "comment", "xmp", "photoshop"}


def test_an_mpo_gives_its_first_frame_without_the_index_or_the_others():
    first, second = (Image.open(io.BytesIO(jpeg(seed=seed))) for seed in (3, 4))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second], quality=90)
    data = buf.getvalue()
    p = process_image(data, "a.jpg")
    assert p.format == "JPEG" and len(p.display_bytes) < len(data) * 0.6
    assert set(markers(p.display_bytes)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}
    with Image.open(io.BytesIO(data)) as im:
        assert (pixels(p.display_bytes) == np.asarray(im.convert("RGB"))).all()
    assert p.display_bytes.count(b"\xff\xd8") == 1


@pytest.mark.parametrize(
    ("what", "save"),
    [
        ("an ICC profile", {"icc_profile": b"\0" * 128 + b"not really an ICC profile"}),
        ("another scan (progressive)", {"progressive": True, "comment": b"secret patient name"}),
    ],
)
def test_a_profile_or_another_scan_is_re_encoded(what, save):
    data = jpeg(**save)
    p = process_image(data, "a.jpg")
    assert p.display_bytes != data, what
    assert b"secret patient name" not in p.display_bytes
    # the same picture all the same (re-encoded, so close, not equal)
    assert np.abs(pixels(p.display_bytes).astype(int) - pixels(data).astype(int)).mean() < 3


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("Adobe colour transform", (0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")),
        ("an unknown segment", (0xF0, b"JPEG-XT?")),
        ("an APP0 that is not JFIF", (0xE0, b"JFXX\x00\x10 a thumbnail")),
    ],
)
def test_a_segment_it_does_not_know_to_be_harmless_is_re_encoded(what, body):
    data = with_segments(jpeg(), segment(*body))
    try:
        p = process_image(data, "a.jpg")
    except ImageRejected:
        return  # refused outright is fine too
    assert body[1] not in p.display_bytes, what
    assert set(markers(p.display_bytes)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}


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


def test_text_hidden_past_the_jfif_header_never_reaches_the_display_copy():
    """libjpeg reads JFIF's 16 bytes and ignores the rest of the segment, so a longer APP0 could
    carry any text (a location, a patient's name) into a passed-through copy: it is re-encoded."""
    data = jpeg()
    length = int.from_bytes(data[4:6], "big")
    assert data[6:11] == b"JFIF\x00" and length == 16
    secret = b"GPS 51.5074N 0.1278W patient=Jane Doe"
    app0 = data[2:4] + (length + len(secret)).to_bytes(2, "big") + data[6 : 4 + length] + secret
    doctored = data[:2] + app0 + data[4 + length :]
    p = process_image(doctored, "a.jpg")
    assert secret not in p.display_bytes and secret not in p.thumb_bytes
    Image.open(io.BytesIO(p.display_bytes)).load()
    assert process_image(data, "b.jpg").display_bytes == data  # the plain one still passes through


# The pass-through's decode is DCT-scaled to the thumbnail's size (1/2 for 512 px, 1/8 for 2048 px):
# libjpeg still Huffman-decodes every block, so what a full decode refuses is refused all the same.


def smooth_jpeg(size: tuple[int, int]) -> bytes:
    """A photo-like JPEG that decodes fast (smooth fields, a little noise)."""
    rng = np.random.default_rng(5)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    rgb = np.array([200, 150, 130]) + 30 * x - 20 * y + rng.normal(0, 2, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype("uint8")).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def scan_start(data: bytes) -> int:
    """Where the entropy-coded data begins (after the start-of-scan header)."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def libjpeg_only_segments(data: bytes) -> list[int]:
    """Positions inside the Huffman tables and the scan header: parsed by libjpeg alone, not Pillow."""
    out, pos = [], 2
    while True:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in (0xC4, 0xDA):
            out += range(pos + 2, pos + 2 + length)
        if marker == 0xDA:
            return out
        pos += 2 + length


def full_decode_error(data: bytes) -> str | None:
    """What a plain full-size decode says about the bytes (None: it decodes)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return str(e)
    return None


def outcome(data: bytes) -> str | None:
    try:
        process_image(data, "a.jpg")
    except ImageRejected as e:
        return e.reason
    return None


@pytest.fixture
def drafts(monkeypatch) -> list[tuple[int, int]]:
    """Records the size each decode was scaled to."""
    from labeler.images import processing

    seen: list[tuple[int, int]] = []
    real = processing._draft

    def spy(im, target, min_fraction):
        real(im, target, min_fraction)
        seen.append(im.size)

    monkeypatch.setattr(processing, "_draft", spy)
    return seen


@pytest.mark.parametrize(("size", "scaled"), [((512, 384), (256, 192)), ((2048, 1536), (256, 192))])
def test_the_thumbnail_comes_from_a_dct_scaled_decode(size, scaled, drafts):
    data = smooth_jpeg(size)
    p = process_image(data, "a.jpg")
    assert p.display_bytes == data and p.display_size == size
    assert drafts == [scaled] and p.thumb_size == (256, 192)
    # the same picture as the full decode reduced to the thumbnail's size
    with Image.open(io.BytesIO(data)) as im:
        reference = np.asarray(im.reduce(size[0] // 256), dtype=int)
    assert np.abs(pixels(p.thumb_bytes).astype(int) - reference).mean() < 3


def test_an_image_needing_a_display_copy_is_not_decoded_at_the_thumbnails_scale(drafts):
    exif = Image.Exif()
    exif[0x0112] = 6  # held sideways: the display copy is turned, so re-encoded
    p = process_image(jpeg(size=(1024, 768), exif=exif.tobytes()), "a.jpg")
    assert drafts == [] and p.display_size == (768, 1024)


@pytest.mark.parametrize("size", [(512, 384), (2048, 1536)])
def test_truncated_anywhere_in_the_scan_is_refused(size):
    data = smooth_jpeg(size)
    start = scan_start(data)
    cuts = [start, start + 1, len(data) - 2, len(data) - 1]
    cuts += range(start, len(data), max(1, (len(data) - start) // 40))
    for cut in cuts:
        assert outcome(data[:cut]) == "truncated image", cut
        assert full_decode_error(data[:cut]) is not None


@pytest.mark.parametrize(("size", "every"), [((512, 384), 1), ((2048, 1536), 5)])
def test_corrupt_data_is_refused_exactly_when_a_full_decode_refuses_it(size, every, drafts):
    data = smooth_jpeg(size)
    start = scan_start(data)
    positions = libjpeg_only_segments(data)[::every]
    positions += range(start, len(data) - 2, (len(data) - start) // 50)
    refused = passed_through = 0
    for pos in positions:
        for flip in (0x01, 0x80):
            corrupt = bytearray(data)
            corrupt[pos] ^= flip
            corrupt = bytes(corrupt)
            drafts.clear()
            try:
                p = process_image(corrupt, "a.jpg")
            except ImageRejected as e:
                reason = e.reason
            else:
                reason = None
                passed_through += p.display_bytes == corrupt
            expected = full_decode_error(corrupt)
            assert (reason is None) == (expected is None), (pos, flip, reason, expected)
            refused += reason is not None and drafts == [(256, 192)]
    # not vacuous: corrupt tables were refused after a scaled decode, corrupt pixels passed through
    assert refused > 20 and passed_through > 20


def byte_walk_end(data: bytes, pos: int) -> bytes | None:
    """The entropy-coded data's end, walked byte by byte: the prefix up to the end-of-image marker."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return None
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            pos += 1 if nxt == 0xFF else 2
            continue
        return data[: pos + 2] if nxt == 0xD9 else None


def test_the_end_of_the_scan_is_found_as_a_byte_walk_finds_it():
    import random

    from labeler.images.processing import _clean_jpeg_prefix

    data = jpeg(size=(64, 48))
    header = data[: scan_start(data)]
    # stuffed bytes, restart markers, fill bytes, a lone 0xFF, end of image, a comment, another scan
    pieces = [b"\xff\x00", b"\xff\xff", b"\xff", b"\xff\xd9", b"\xff\xfe", b"\xff\xda", b"\xff\xcf"]
    pieces += [bytes((0xFF, marker)) for marker in range(0xD0, 0xD9)]  # the restarts, and SOI
    pieces += [b"\x00", b"\xd9", b"\n", b"ab"]
    rng = random.Random(7)
    ends = set()
    for _ in range(5000):
        scan = b"".join(rng.choices(pieces, k=rng.randrange(12)))
        expected = byte_walk_end(header + scan, len(header))
        assert _clean_jpeg_prefix(header + scan) == expected, scan
        ends.add(None if expected is None else len(expected) - len(header))
    assert len(ends) > 10  # found at many places, and not found
