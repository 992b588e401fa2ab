import hashlib
import io
import struct
import threading
import warnings
import zlib

import hostile
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from labeler.images.processing import (
    DEFAULT_LIMITS,
    ImageLimits,
    ImageRejected,
    MiB,
    ProcessedImage,
    _DecodeBudget,
    process_image,
)

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def assert_no_metadata(data: bytes) -> None:
    im = reopen(data)
    assert "exif" not in im.info
    assert "xmp" not in im.info
    assert len(im.getexif()) == 0
    assert b"Exif\0\0" not in data
    assert b"http://ns.adobe.com/xap" not in data


def jpeg_with_sof_size(w: int, h: int) -> bytes:
    """A real small JPEG whose frame header claims w x h."""
    data = bytearray(hostile.jpeg())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, h, w)
    return bytes(data)


def quadrant_jpeg(w: int, h: int, orientation: int) -> bytes:
    """Red top-left quadrant on green, with an EXIF orientation tag."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 1] = 200
    arr[: h // 2, : w // 2] = (220, 0, 0)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return hostile.encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())


def is_red(px: tuple[int, ...]) -> bool:
    return px[0] > 150 and px[1] < 80


# -- accepted files ------------------------------------------------------------


def test_small_jpeg() -> None:
    data = hostile.jpeg(64, 48)
    p = process_image(data, "lesion.jpg")
    assert isinstance(p, ProcessedImage)
    assert p.sha256 == hashlib.sha256(data).hexdigest()
    assert (p.width, p.height, p.format) == (64, 48, "JPEG")
    assert p.display_size == (64, 48) and p.display_mime == "image/jpeg"
    assert p.thumb_size == (64, 48)
    assert reopen(p.display_bytes).format == "JPEG"
    assert reopen(p.thumb_bytes).size == p.thumb_size
    assert (p.original_ext, p.display_ext) == ("jpg", "jpg")


@pytest.mark.parametrize(
    ("fmt", "name", "params"),
    [
        ("PNG", "a.png", {}),
        ("WEBP", "a.webp", {"quality": 90}),
        ("WEBP", "a.webp", {"lossless": True}),
        ("TIFF", "a.tif", {}),
        ("TIFF", "a.TIFF", {"compression": "tiff_deflate"}),
    ],
)
def test_other_formats_accepted(fmt: str, name: str, params: dict) -> None:
    data = hostile.encode(hostile.photo(300, 200), fmt, **params)
    p = process_image(data, name)
    assert (p.format, p.width, p.height) == (fmt, 300, 200)
    assert p.display_size == (300, 200)
    assert p.thumb_size == (256, 171)


@pytest.mark.parametrize("name", ["a.jpg", "a.jpeg", "a.JPE", "A.JPG", "a.jfif", "noextension"])
def test_jpeg_extension_equivalents(name: str) -> None:
    assert process_image(hostile.jpeg(), name).format == "JPEG"


def test_cmyk_jpeg_converted_to_rgb() -> None:
    data = hostile.encode(hostile.photo(120, 80, "CMYK"), "JPEG", quality=90)
    p = process_image(data, "cmyk.jpg")
    assert reopen(p.display_bytes).mode == "RGB"
    assert reopen(p.thumb_bytes).mode == "RGB"


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "RGBA"])
def test_modes_converted(mode: str) -> None:
    data = hostile.encode(hostile.photo(80, 60, mode), "PNG")
    p = process_image(data, "m.png")
    assert reopen(p.display_bytes).mode == "RGB"  # opaque alpha is dropped
    assert p.display_mime == "image/jpeg"


def test_real_transparency_gives_png_display_and_flat_thumbnail() -> None:
    im = hostile.photo(80, 60, "RGBA")
    im.putalpha(Image.linear_gradient("L").resize((80, 60)))
    p = process_image(hostile.encode(im, "PNG"), "alpha.png")
    assert p.display_mime == "image/png" and p.display_ext == "png"
    assert reopen(p.display_bytes).mode == "RGBA"
    assert reopen(p.thumb_bytes).mode == "RGB"


def test_palette_with_transparency() -> None:
    im = hostile.photo(40, 30).convert("P")
    data = hostile.encode(im, "PNG", transparency=0)
    p = process_image(data, "p.png")
    assert p.display_size == (40, 30)


@pytest.mark.parametrize(
    ("array", "fmt", "kind"),
    [
        (np.full((30, 40), 40000, np.uint16), "PNG", "16-bit grayscale"),
        (np.full((30, 40), 40000, np.uint16), "TIFF", "16-bit grayscale"),
        (np.full((30, 40), 1 << 20, np.int32), "TIFF", "32-bit integer"),
        (np.full((30, 40), 0.5, np.float32), "TIFF", "floating-point"),
    ],
)
def test_modes_a_photo_does_not_come_in_are_refused(array, fmt, kind) -> None:
    data = hostile.encode(Image.fromarray(array), fmt)
    with pytest.raises(ImageRejected, match=kind) as info:
        process_image(data, "scan." + fmt.lower())
    assert "save the photo as 8-bit colour JPEG, PNG or TIFF" in info.value.reason


def test_16_bit_rgb_is_reduced_to_8_bit() -> None:
    """16-bit colour (camera and dermatoscope exports) is a photo: Pillow decodes it to 8 bits."""
    rgb16 = struct.pack(">3H", 40000, 20000, 10000) * (40 * 30)
    ihdr = struct.pack(">IIBBBBB", 40, 30, 16, 2, 0, 0, 0)
    raw = b"".join(b"\0" + rgb16[i * 240 : (i + 1) * 240] for i in range(30))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + hostile._png_chunk(b"IHDR", ihdr)
        + hostile._png_chunk(b"IDAT", zlib.compress(raw))
        + hostile._png_chunk(b"IEND", b"")
    )
    display = reopen(process_image(data, "rgb16.png").display_bytes)
    r, g, b = display.getpixel((20, 15))
    assert abs(r - 40000 // 257) <= 3 and abs(g - 20000 // 257) <= 3 and abs(b - 10000 // 257) <= 3


# -- memory: decoding is bounded by bytes, not pixels alone ------------------------


def test_decode_limit_counts_bytes_per_pixel_not_pixels() -> None:
    """Same pixel count, same limit: RGB fits, transparent RGBA (decoded + premultiplied copy) does not."""
    limits = ImageLimits(max_decode_bytes=20 * MiB, display_max=4096)
    rgb = hostile.flat_png(2000, 2000, "RGB")  # 4 bytes per pixel as decoded: 15.3 MB
    assert process_image(rgb, "rgb.png", limits=limits).display_size == (2000, 2000)
    rgba = hostile.flat_png(2000, 2000, "RGBA")  # 4 decoded + 4 for its RGBA/RGB copy: 30.5 MB
    with pytest.raises(
        ImageRejected, match=r"would need 30\.5 MB of memory; the limit is 20\.0 MB"
    ):
        process_image(rgba, "rgba.png", limits=limits)


def test_progressive_jpeg_counts_its_coefficients() -> None:
    """A progressive JPEG keeps every coefficient of the full image, whatever it is decoded to."""
    photo = hostile.photo(2400, 1600)
    baseline = hostile.encode(photo, "JPEG", quality=80)
    progressive = hostile.encode(photo, "JPEG", quality=80, progressive=True, subsampling=0)
    limits = ImageLimits(max_decode_bytes=24 * MiB, display_max=4096)  # decoded: 14.6 MB
    assert process_image(baseline, "b.jpg", limits=limits).width == 2400
    with pytest.raises(ImageRejected, match=r"would need 36\.6 MB"):  # + 3 x 2 bytes per pixel
        process_image(progressive, "p.jpg", limits=limits)
    assert process_image(progressive, "p.jpg").width == 2400  # within the default limit


def test_webp_is_checked_before_its_decoder_allocates() -> None:
    data = hostile.encode(hostile.photo(1000, 1000), "WEBP", quality=50)
    with pytest.raises(ImageRejected, match="memory"):
        process_image(data, "a.webp", limits=ImageLimits(max_decode_bytes=8 * MiB))


def test_refused_for_memory_reports_the_size() -> None:
    with pytest.raises(ImageRejected) as info:
        process_image(hostile.flat_png(10_000, 10_000, "RGBA"), "big.png")
    assert info.value.reason.startswith("image too large to process: 10000x10000 pixels")
    assert "Save a smaller copy" in info.value.reason


def test_concurrent_decodes_share_the_budget() -> None:
    """Threads of one worker wait for each other rather than each taking the whole limit."""
    budget = _DecodeBudget()
    first_in, release_first, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with budget.hold(6, 10):
            first_in.set()
            release_first.wait(5)

    def second() -> None:
        with budget.hold(6, 10):
            second_in.set()

    t1 = threading.Thread(target=first)
    t1.start()
    assert first_in.wait(5)
    t2 = threading.Thread(target=second)
    t2.start()
    assert not second_in.wait(0.2)  # 6 + 6 > 10: waits
    release_first.set()
    assert second_in.wait(5)
    t1.join(5)
    t2.join(5)
    with budget.hold(4, 10), budget.hold(6, 10):  # within the limit together: no wait
        pass


def test_multi_frame_uses_first_frame() -> None:
    red = Image.new("RGB", (50, 40), (220, 0, 0))
    blue = Image.new("RGB", (50, 40), (0, 0, 220))
    data = hostile.encode(red, "TIFF", save_all=True, append_images=[blue])
    p = process_image(data, "pages.tiff")
    assert is_red(reopen(p.display_bytes).getpixel((25, 20)))


def test_icc_profile_kept() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    p = process_image(hostile.jpeg(icc_profile=icc), "icc.jpg")
    assert reopen(p.display_bytes).info.get("icc_profile") == icc
    assert reopen(p.thumb_bytes).info.get("icc_profile") == icc


# -- EXIF: orientation applied, everything else stripped -------------------------


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [(1, "tl"), (3, "br"), (6, "tr"), (8, "bl"), (5, "tl"), (2, "tr")],
)
def test_exif_orientation_applied(orientation: int, red_corner: str) -> None:
    p = process_image(quadrant_jpeg(120, 80, orientation), "o.jpg")
    swapped = orientation in (5, 6, 7, 8)
    assert (p.width, p.height) == ((80, 120) if swapped else (120, 80))
    display = reopen(p.display_bytes)
    assert display.size == (p.width, p.height)
    w, h = display.size
    corners = {"tl": (5, 5), "tr": (w - 6, 5), "bl": (5, h - 6), "br": (w - 6, h - 6)}
    for name, xy in corners.items():
        assert is_red(display.getpixel(xy)) == (name == red_corner), name
    assert is_red(reopen(p.thumb_bytes).getpixel((2, 2))) == (red_corner == "tl")


def test_orientation_applied_on_draft_path() -> None:
    p = process_image(quadrant_jpeg(4000, 3000, 6), "big.jpg")
    assert (p.width, p.height) == (3000, 4000)
    assert p.display_size == (1500, 2000)
    display = reopen(p.display_bytes)
    assert is_red(display.getpixel((1400, 100))) and not is_red(display.getpixel((100, 100)))


def test_gps_and_exif_stripped() -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 1
    exif[0x010F] = "PhoneMaker"
    exif[GPS_IFD] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 0.0)}
    data = hostile.jpeg(300, 200, exif=exif.tobytes(), xmp=b"<x:xmpmeta secret='1'/>")
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(GPS_IFD)  # the input really carries GPS
    p = process_image(data, "gps.jpg")
    assert_no_metadata(p.display_bytes)
    assert_no_metadata(p.thumb_bytes)


def test_unreadable_exif_is_treated_as_upright() -> None:
    data = bytearray(quadrant_jpeg(60, 40, 6))
    start = data.find(b"Exif\0\0") + 6
    data[start : start + 8] = b"XXXXXXXX"  # not a TIFF header any more
    p = process_image(bytes(data), "bad-exif.jpg")
    assert (p.width, p.height) == (60, 40)


# -- sizes and the draft path -----------------------------------------------------


def test_draft_12mp_gives_half_scale_display() -> None:
    p = process_image(hostile.jpeg(4000, 3000), "12mp.jpg")
    assert p.display_size == (2000, 1500)
    assert p.thumb_size == (256, 192)


def test_big_jpeg_display_long_edge_is_2048() -> None:
    p = process_image(hostile.jpeg(5000, 3000), "15mp.jpg")
    assert (p.width, p.height) == (5000, 3000)
    assert p.display_size == (2048, 1229)
    assert reopen(p.display_bytes).size == (2048, 1229)
    assert max(p.thumb_size) == 256


def test_exact_display_max_when_min_fraction_is_one() -> None:
    limits = ImageLimits(display_min_fraction=1.0)
    p = process_image(hostile.jpeg(4000, 3000), "12mp.jpg", limits=limits)
    assert p.display_size == (2048, 1536)


def test_big_png_resized_to_display_max() -> None:
    p = process_image(hostile.png(3000, 1000), "wide.png")
    assert p.display_size == (2048, 683)
    assert p.thumb_size == (256, 85)


# -- hostile files -----------------------------------------------------------------


def rejected(data: bytes, name: str, limits: ImageLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(ImageRejected) as info:
        process_image(data, name, limits=limits)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_empty_file() -> None:
    assert rejected(b"", "a.jpg") == "empty file"


@pytest.mark.parametrize(
    "data", [b"hello, world\n" * 10, b"<html><body>hi</body></html>", b"\xff\xd8\xff" + b"\0" * 50]
)
def test_not_an_image(data: bytes) -> None:
    assert rejected(data, "a.jpg") == "not an image"


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "a.gif"), ("BMP", "a.bmp")])
def test_unsupported_format(fmt: str, name: str) -> None:
    assert rejected(hostile.encode(hostile.photo(), fmt), name) == f"unsupported format {fmt}"


@pytest.mark.parametrize(("make", "name"), [(hostile.jpeg, "t.jpg"), (hostile.png, "t.png")])
def test_truncated(make, name: str) -> None:
    assert rejected(hostile.truncated(make(600, 400)), name) == "truncated image"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_png_decompression_bomb_header() -> None:
    reason = rejected(hostile.png_bomb_header(50_000, 50_000), "bomb.png")
    assert reason == "image too large: 50000x50000 pixels exceeds the 100 megapixel limit"


def test_png_just_over_the_limit_without_pillow_warning() -> None:
    # 110 MP: above our limit and above Pillow's warning threshold, below its error.
    reason = rejected(hostile.png_bomb_header(11_000, 10_000), "big.png")
    assert reason.startswith("image too large: 11000x10000")


@pytest.mark.parametrize(("w", "h"), [(12_000, 9_000), (60_000, 60_000)])
def test_jpeg_decompression_bomb_header(w: int, h: int) -> None:
    assert rejected(jpeg_with_sof_size(w, h), "bomb.jpg").startswith("image too large")


def test_webp_canvas_checked_before_decoding() -> None:
    data = bytearray(hostile.encode(hostile.photo(), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L"
    bits = (16383 - 1) | ((16383 - 1) << 14)
    struct.pack_into("<I", data, 21, bits)
    assert rejected(bytes(data), "bomb.webp").startswith("image too large: 16383x16383")


def test_pixel_limit_is_configurable() -> None:
    limits = ImageLimits(max_pixels=1000)
    assert rejected(hostile.jpeg(64, 48), "a.jpg", limits).startswith("image too large: 64x48")


def test_file_size_limit() -> None:
    limits = ImageLimits(max_file_bytes=100)
    assert rejected(hostile.jpeg(), "a.jpg", limits).startswith("file too large")


def test_huge_exif_block_in_jpeg() -> None:
    reason = rejected(hostile.jpeg_with_exif_segments(3), "exif.jpg")
    assert reason.startswith("EXIF block too large (")


def test_huge_exif_block_in_png() -> None:
    assert rejected(hostile.png_with_huge_exif(), "exif.png").startswith("EXIF block too large")


def test_huge_icc_profile() -> None:
    limits = ImageLimits(max_icc_bytes=100)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    reason = rejected(hostile.jpeg(icc_profile=icc), "icc.jpg", limits)
    assert reason.startswith("ICC profile too large")


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (hostile.jpeg(), "a.png", "extension .png does not match the JPEG content"),
        (hostile.png(), "a.jpg", "extension .jpg does not match the PNG content"),
        (hostile.jpeg(), "a.exe", "extension .exe does not match the JPEG content"),
        (hostile.png(), "a.tif", "extension .tif does not match the PNG content"),
    ],
)
def test_wrong_extension(data: bytes, name: str, reason: str) -> None:
    assert rejected(data, name) == reason


def test_format_not_allowed() -> None:
    limits = ImageLimits(allowed_formats=frozenset({"JPEG"}))
    assert rejected(hostile.png(), "a.png", limits) == "not an image"


def test_no_global_state_leaks() -> None:
    filters = list(warnings.filters)
    max_pixels = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageRejected):
        process_image(hostile.png_bomb_header(11_000, 10_000), "b.png")
    with pytest.raises(ImageRejected):
        process_image(jpeg_with_sof_size(12_000, 9_000), "b.jpg")
    process_image(hostile.jpeg(), "a.jpg")
    assert warnings.filters == filters
    assert Image.MAX_IMAGE_PIXELS == max_pixels
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
