"""Benchmark: cost of importing a 12 MP JPEG versus one plain full-size decode of it.

    .venv/bin/python bench/import.py --count 100

Generates skin-like 4000x3000 JPEGs once (cached in bench/out/, git-ignored), then,
image by image and alternating which goes first, times
  (a) decode: Image.open(BytesIO(data)).load() on bytes already in memory;
  (b) import: read the file + process_image (which hashes) + write original, display and
      thumbnail to a LocalStorage in a temp dir, plus, as in the import service, one sync before
      each checkpoint commit (every 25 images), its time spread over those images.
The goal is import/decode <= 1.0.

    .venv/bin/python bench/import.py --small 600

Small images instead: COUNT camera-like 512x512 JPEGs without EXIF (generated in memory); CPU time of
this process (time.process_time: user + system, robust on a shared machine) per image for
  (a) import: process_image (hash, decode, checks, display copy, thumbnail) + the three puts + the
      checkpoint syncs, as above;
  (b) a plain store of the same bytes: written to a new file, nothing checked (what a tool that only
      stores the upload, such as Label Studio, does), measured in the same run, alternating order.
Printed with their ratio (issue 14: import <= plain store x what Label Studio's HTTP upload costs; the
HTTP layer is not part of either figure here).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from labeler.images.processing import ImageLimits, process_image
from labeler.images.services import CHECKPOINT_EVERY
from labeler.images.storage import LocalStorage, content_key

OUT = Path(__file__).resolve().parent / "out" / "import"
W, H = 4000, 3000


def make_photo(seed: int) -> Path:
    """A skin-like photo: smooth colour fields, a darker lesion, sensor noise."""
    path = OUT / f"skin2-{W}x{H}-{seed:04d}.jpg"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    # Colour fields and the lesion at 1/4 scale, upsampled in C; noise is added at full size.
    w, h = W // 4, H // 4
    base = np.array([205, 160, 135], np.float32) + rng.normal(0, 12, 3)
    coarse = rng.normal(0, 14, (6, 8, 3)).astype(np.float32) + 128
    field = np.asarray(
        Image.fromarray(coarse.clip(0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
        np.float32,
    )
    img = base + (field - 128)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, r = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h, rng.uniform(40, 120)
    lesion = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
    img = img * (1 - 0.55 * lesion) + np.array([90, 50, 35], np.float32) * 0.55 * lesion
    small = Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")
    full = np.asarray(small.resize((W, H), Image.BICUBIC), np.int16)
    tile = rng.normal(0, 4, (500, 500, 3)).astype(np.int16)
    noise = np.tile(tile, (H // 500, W // 500, 1))
    im = Image.fromarray((full + noise).clip(0, 255).astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    if seed % 3 == 0:
        exif[0x0112] = 6  # portrait photo held sideways
    tmp = path.with_suffix(".tmp")
    im.save(tmp, "JPEG", quality=90, exif=exif.tobytes())
    os.replace(tmp, path)
    return path


def decode(data: bytes) -> float:
    t = time.perf_counter()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
    return time.perf_counter() - t


def import_one(path: Path, storage: LocalStorage, limits: ImageLimits, written: list[str]) -> float:
    t = time.perf_counter()
    data = path.read_bytes()
    p = process_image(data, path.name, limits=limits)
    keys = (
        content_key("originals", p.sha256, p.original_ext),
        content_key("display", p.sha256, p.display_ext),
        content_key("thumbs", p.sha256, "jpg"),
    )
    storage.put(keys[0], data, durable=False)  # as the import service: one sync per checkpoint
    storage.put(keys[1], p.display_bytes, durable=False)
    storage.put(keys[2], p.thumb_bytes, durable=False)
    elapsed = time.perf_counter() - t
    written.extend(
        keys
    )  # deleted after the next checkpoint sync, so the sync has real data to flush
    return elapsed


def checkpoint(storage: LocalStorage, written: list[str]) -> float:
    """The sync the import service makes before each commit (every CHECKPOINT_EVERY images)."""
    t = time.perf_counter()
    storage.make_durable()
    elapsed = time.perf_counter() - t
    for key in written:  # untimed: the next round must write again, not find it stored
        storage.delete(key)
    written.clear()
    return elapsed


def small_jpegs(count: int) -> list[bytes]:
    """Camera-like 512x512 JPEGs without EXIF (smooth skin tones, noise), all distinct."""
    rng = np.random.default_rng(11)
    out = []
    for _ in range(count):
        base = np.array([205, 160, 135], np.float32) + rng.normal(0, 12, 3)
        coarse = rng.normal(0, 14, (4, 4, 3)).astype(np.float32) + 128
        field = np.asarray(
            Image.fromarray(coarse.clip(0, 255).astype(np.uint8)).resize((512, 512), Image.BICUBIC),
            np.float32,
        )
        img = base + (field - 128) + rng.normal(0, 4, (512, 512, 3))
        buf = io.BytesIO()
        Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB").save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def small_run(count: int, fsync: bool) -> None:
    """CPU per imported 512x512 image next to a plain store of the same bytes (see the docstring)."""
    datas = small_jpegs(count)
    limits = ImageLimits()
    cpu_import = cpu_plain = cpu_process = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(Path(tmp) / "store", fsync=fsync)
        plain = Path(tmp) / "plain"
        plain.mkdir()
        written: list[str] = []

        def imp(i: int, data: bytes) -> float:
            nonlocal cpu_process
            t = time.process_time()
            p = process_image(data, f"img{i}.jpg", limits=limits)
            cpu_process += time.process_time() - t
            keys = (
                content_key("originals", p.sha256, p.original_ext),
                content_key("display", p.sha256, p.display_ext),
                content_key("thumbs", p.sha256, "jpg"),
            )
            storage.put(keys[0], data, durable=False)
            storage.put(keys[1], p.display_bytes, durable=False)
            storage.put(keys[2], p.thumb_bytes, durable=False)
            if (i + 1) % CHECKPOINT_EVERY == 0:
                storage.make_durable()
            written.extend(keys)
            return time.process_time() - t

        def store(i: int, data: bytes) -> float:
            t = time.process_time()
            (plain / f"{i}.jpg").write_bytes(data)
            return time.process_time() - t

        imp(0, datas[0])  # warm up
        store(0, datas[0])
        cpu_process = 0.0
        for i, data in enumerate(datas):
            if i % 2:
                cpu_import += imp(i, data)
                cpu_plain += store(i, data)
            else:
                cpu_plain += store(i, data)
                cpu_import += imp(i, data)
        t = time.process_time()
        storage.make_durable()
        cpu_import += time.process_time() - t
    kb = statistics.fmean(len(d) for d in datas) / 1024
    a, b = cpu_import / count * 1000, cpu_plain / count * 1000
    print(f"small images: {count} x 512x512 JPEG q90 without EXIF ({kb:.0f} KB each)")
    print(
        f"import CPU per image:      {a:6.2f} ms (hash, decode, checks, display copy, thumbnail, puts)"
    )
    c = cpu_process / count * 1000
    print(f"  of which process_image:  {c:6.2f} ms; the three puts and the syncs: {a - c:.2f} ms")
    print(f"plain store CPU per image: {b:6.2f} ms (the same bytes written to a file)")
    print(f"ratio import/plain store:  {a / b:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1, help="passes over all images")
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument(
        "--exact-display", action="store_true", help="display_min_fraction=1.0 (exactly 2048)"
    )
    parser.add_argument(
        "--small",
        type=int,
        metavar="COUNT",
        help="instead: CPU per imported 512x512 image next to a plain store of the same bytes",
    )
    args = parser.parse_args()
    if args.small:
        small_run(args.small, fsync=not args.no_fsync)
        return

    OUT.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with Pool() as pool:
        paths = pool.map(make_photo, range(args.count), chunksize=4)
    print(f"{len(paths)} images ready in {time.perf_counter() - t:.1f} s ({OUT})")

    limits = ImageLimits(display_min_fraction=1.0) if args.exact_display else ImageLimits()
    decode_s: list[float] = []
    import_s: list[float] = []
    sync_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(Path(tmp), fsync=not args.no_fsync)
        written: list[str] = []
        import_one(paths[0], storage, limits, written)  # warm up imports and caches
        checkpoint(storage, written)
        decode(paths[0].read_bytes())
        for r in range(args.rounds):
            for i, path in enumerate(paths):
                data = path.read_bytes()  # also warms the page cache for the import
                if (i + r) % 2:
                    decode_s.append(decode(data))
                    import_s.append(import_one(path, storage, limits, written))
                else:
                    import_s.append(import_one(path, storage, limits, written))
                    decode_s.append(decode(data))
                if len(import_s) % CHECKPOINT_EVERY == 0:
                    sync_s.append(checkpoint(storage, written))
        sync_s.append(checkpoint(storage, written))
    # the syncs are spread over the images they made durable
    import_s = [x + sum(sync_s) / len(import_s) for x in import_s]

    d, m = statistics.fmean(decode_s) * 1000, statistics.fmean(import_s) * 1000
    dm, mm = statistics.median(decode_s) * 1000, statistics.median(import_s) * 1000
    print(f"images: {len(paths)} x {args.rounds} rounds, {W}x{H} JPEG q90")
    print(f"decode (full size): mean {d:7.1f} ms  median {dm:7.1f} ms")
    print(f"import (whole):     mean {m:7.1f} ms  median {mm:7.1f} ms")
    print(
        f"  of which the checkpoint syncs: {sum(sync_s) / len(import_s) * 1000:.1f} ms per image "
        f"({len(sync_s)} syncs, one per {CHECKPOINT_EVERY} images)"
    )
    print(f"ratio import/decode: mean {m / d:.2f}  median {mm / dm:.2f}  (goal <= 1.0)")


if __name__ == "__main__":
    main()
