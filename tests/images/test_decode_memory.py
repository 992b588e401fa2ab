"""Peak memory of processing an upload, measured in a fresh process (ru_maxrss above the baseline).

The files of the finding: a 10000x10000 float TIFF (2 MB) took a worker to 2.7 GB and a 10000x10000
RGBA PNG (2 MB) to 1.3 GB. Both are now refused from the header. Each accepted format stays within
the decode_bytes estimate that the limit is checked against, so no upload below the limit goes past
it, and the largest RGB PNG the default limit accepts (48 MP) stays below it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import hostile
import pytest
from PIL import Image

import labeler
from labeler.images.processing import DEFAULT_LIMITS, MiB

PROBE = """
import io, json, resource, sys
from PIL import Image
from labeler.images.processing import DEFAULT_LIMITS, ImageRejected, process_image

data = open(sys.argv[1], "rb").read()
estimate = None
try:
    from labeler.images.processing import _draft, decode_bytes
    im = Image.open(io.BytesIO(data))
    full, fmt = im.size, "JPEG" if im.format == "MPO" else im.format
    if fmt == "JPEG":
        _draft(im, DEFAULT_LIMITS.display_max, DEFAULT_LIMITS.display_min_fraction)
    estimate = decode_bytes(im, fmt, full, DEFAULT_LIMITS.display_max)
    im.close()
    del im
except (ImportError, KeyError):
    pass  # KeyError: a refused mode
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    process_image(data, sys.argv[2])
    outcome = "imported"
except ImageRejected as e:
    outcome = e.reason
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps({"outcome": outcome, "peak": peak, "estimate": estimate}))
"""
SLACK = 12 * MiB  # interpreter and allocator noise, encoders' buffers


def measure(tmp_path: Path, name: str, data: bytes) -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROBE, str(path), name],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={"PYTHONPATH": str(Path(labeler.__file__).parents[1]), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("float.tif", lambda: hostile.float_tiff(10_000, 10_000), "floating-point"),
        ("alpha.png", lambda: hostile.flat_png(10_000, 10_000, "RGBA"), "memory"),
    ],
)
def test_files_of_the_finding_are_refused_without_decoding(tmp_path, name, make, reason):
    data = make()
    assert len(data) < 3 * MiB  # small files, 400 MB of pixels each
    result = measure(tmp_path, name, data)
    assert result["peak"] < 32 * MiB, f"peak {result['peak'] / MiB:.0f} MB"
    assert reason in result["outcome"]


def _photo(mode: str = "RGB") -> Image.Image:
    im = hostile.photo(3000, 2000)
    if mode == "RGBA":
        im.putalpha(128)  # real transparency
    return im if mode in ("RGB", "RGBA") else im.convert(mode)


SAMPLES = {
    "rgb.png": lambda: hostile.flat_png(3000, 2000, "RGB"),
    "alpha.png": lambda: hostile.flat_png(3000, 2000, "RGBA"),
    "gray.png": lambda: hostile.flat_png(3000, 2000, "L"),
    "gray-alpha.png": lambda: hostile.flat_png(3000, 2000, "LA"),
    "palette.png": lambda: encode(_photo("L").convert("P"), "PNG", transparency=0),
    "one-strip.tif": lambda: encode(
        _photo(), "TIFF", compression="tiff_deflate", strip_size=1 << 30
    ),
    "alpha.tif": lambda: encode(_photo("RGBA"), "TIFF", compression="tiff_deflate"),
    "progressive.jpg": lambda: encode(_photo(), "JPEG", progressive=True, subsampling=0),
    "cmyk.jpg": lambda: encode(_photo("CMYK"), "JPEG"),
    "draft.jpg": lambda: encode(hostile.photo(4500, 3000), "JPEG", quality=80),  # decoded at 1/2
    "lossy.webp": lambda: encode(_photo(), "WEBP", quality=50, method=0),
    "alpha.webp": lambda: encode(_photo("RGBA"), "WEBP", quality=50, method=0),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_peak_stays_within_the_estimate_the_limit_checks(tmp_path, name):
    result = measure(tmp_path, name, SAMPLES[name]())
    assert result["outcome"] == "imported"
    assert result["estimate"] <= DEFAULT_LIMITS.max_decode_bytes
    assert result["peak"] <= result["estimate"] * 1.1 + SLACK, (
        f"peak {result['peak'] / MiB:.0f} MB, estimate {result['estimate'] / MiB:.0f} MB"
    )


def test_largest_accepted_png_stays_below_the_limit(tmp_path):
    result = measure(tmp_path, "48mp.png", hostile.flat_png(8000, 6000, "RGB"))
    assert result["outcome"] == "imported"
    assert result["peak"] <= DEFAULT_LIMITS.max_decode_bytes + SLACK
