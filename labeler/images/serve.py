"""HTTP responses for stored blobs: streamed in pieces with byte ranges, never read whole into memory.

Raters get images only through the app's authorized routes (never a blob URL or SAS link: a blob's
name is its content hash, so two raters could compare URLs and find the golden images); those
routes send no ETag, no Last-Modified and no file name. Range requests (``Range: bytes=a-b``) are
answered with 206 and exactly those bytes, read from the store as a range.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from flask import Response, current_app, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from .storage import Storage

# nginx's internal location for files the app has authorized (LABELER_X_ACCEL_REDIRECT; the location
# is written by `labeler deploy nginx`): clients never see it, nginx refuses it from outside
ACCEL_PREFIX = "/_labeler_files/"


class _LazyFile:
    """A local file opened on first use (read or fileno) and closed once read to its end or closed:
    a response whose body is never read (a HEAD, a client gone before the first byte) opens nothing."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fh: BinaryIO | None = None
        self._done = False

    def _file(self) -> BinaryIO:
        if self._fh is None:
            if self._done:
                raise ValueError("the file was closed")
            self._fh = self._path.open("rb")
        return self._fh

    def fileno(self) -> int:
        return self._file().fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file().seek(offset, whence)

    def tell(self) -> int:
        return self._file().tell()

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        piece = self._file().read(size)
        if not piece:
            self.close()
        return piece

    def close(self) -> None:
        self._done = True
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def blob_response(
    storage: Storage,
    key: str,
    mimetype: str,
    *,
    cache_control: str,
    etag: str | None = None,
) -> Response:
    """The blob under ``key`` as a streamed response; FileNotFoundError if it is missing.

    ``etag`` (leads' routes only) also makes If-None-Match and If-Range work; without it a
    conditional range request (If-Range) gets the whole blob, as HTTP says.
    """
    size = storage.size(key)
    if (
        etag is None
        and current_app.config.get("X_ACCEL_REDIRECT")
        and storage.path(key) is not None  # a remote store streams through the app, as below
    ):
        return Response(
            status=200, headers=accel_headers(key, mimetype, cache_control=cache_control)
        )
    if etag is not None and request.if_none_match.contains(etag):
        resp = Response(status=304)
        resp.set_etag(etag)
        resp.headers["Cache-Control"] = cache_control
        return resp
    start, length, status = 0, size, 200
    rng = request.range
    if_range = request.headers.get("If-Range")
    if rng is not None and (if_range is None or (etag is not None and if_range == f'"{etag}"')):
        bounds = rng.range_for_length(size)
        if bounds is None:
            raise RequestedRangeNotSatisfiable(length=size)
        start, stop = bounds
        length, status = stop - start, 206
    path = storage.path(key) if status == 200 else None
    if path is not None:
        body = local_body(request.environ, path)
    else:
        body = storage.stream(key, start, length)  # opens the blob now: a missing one raises here
    headers = blob_headers(mimetype, length, cache_control=cache_control)
    if status == 206:
        headers.append(("Content-Range", f"bytes {start}-{start + length - 1}/{size}"))
    resp = Response(body, status=status, headers=headers, direct_passthrough=True)
    if etag is not None:
        resp.set_etag(etag)
    return resp


def local_body(environ: dict, path: Path) -> Iterable[bytes]:
    """A whole local file as a WSGI body: handed to the server's wsgi.file_wrapper (gunicorn sends
    it with sendfile(2), no copy through Python); opened only once the server reads it."""
    return wrap_file(environ, _LazyFile(path))


def accel_headers(key: str, mimetype: str, *, cache_control: str) -> list[tuple[str, str]]:
    """The headers that have nginx send a local blob the caller has authorized (ranges too) from its
    internal location, X-Accel-Redirect (the header never reaches the client). Raters' routes only:
    leads' (an ETag, conditional requests) and remote stores stream through the app."""
    return [
        ("Content-Type", mimetype),
        ("Content-Length", "0"),
        ("X-Accel-Redirect", ACCEL_PREFIX + quote(key)),
        ("Cache-Control", cache_control),
    ]


def blob_headers(mimetype: str, length: int, *, cache_control: str) -> list[tuple[str, str]]:
    """The headers of the blob's bytes sent (all of them, or a range's ``length``): no Last-Modified,
    no file name; an ETag only where the caller adds one (leads' routes)."""
    return [
        ("Content-Type", mimetype),
        ("Content-Length", str(length)),
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", cache_control),
    ]
