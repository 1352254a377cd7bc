"""Proxy mode: image bytes streamed through the app, for networks that cannot reach the bucket.

One ``Range`` is honoured (206, or 416 past the end) along with ``If-Range``, so browsers and
viewers can seek in large TIFFs without fetching them whole. Several ranges in one request are
answered with the whole file, which RFC 9110 allows and saves a multipart/byteranges encoder."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from typing import BinaryIO

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.utils.http import http_date
from django.utils.translation import gettext as _

from defectlab.errors import NotFound, Unavailable, error_response
from defectlab.media.s3 import CHUNK, ObjectChanged, S3Storage


class RangeNotSatisfiable(Exception):
    pass


_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive span a ``Range`` header asks for, or None to send everything: no header, or
    one we may ignore (RFC 9110 §14.2): another unit, several ranges, a malformed or backwards
    span. Raises `RangeNotSatisfiable` when the span lies wholly past the end."""
    if not header:
        return None
    unit, _eq, spec = header.partition("=")
    match = _RANGE_SPEC.fullmatch(spec)
    if unit.strip().lower() != "bytes" or not match or not (match[1] or match[2]):
        return None
    first, last = match[1], match[2]
    if not first:  # "-N": the last N bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(int(last), size - 1) if last else size - 1


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := file.read(CHUNK):
            yield chunk
    finally:
        file.close()


def serve_object(
    request: HttpRequest, storage: S3Storage, key: str, *, content_type: str | None = None
) -> HttpResponseBase:
    """Stream an object through the app, honouring one ``Range`` (206, or 416 past the end) and
    ``If-Range``. GET and HEAD. The object is read with ``If-Match`` on the etag the headers were
    built from, so Content-Length always describes the bytes that follow."""
    content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
    for _attempt in range(3):
        try:
            info = storage.stat(key)
            span = requested_range(request.headers.get("Range"), info.size)
        except FileNotFoundError:
            return error_response(NotFound(_("This file is no longer in storage.")))
        except RangeNotSatisfiable:
            refusal = HttpResponse(status=416)
            refusal["Content-Range"] = f"bytes */{info.size}"
            refusal["Accept-Ranges"] = "bytes"
            return refusal
        validators = (f'"{info.etag}"', http_date(info.last_modified.timestamp()))
        if span and request.headers.get("If-Range", validators[0]) not in validators:
            span = None  # the client's partial copy is of another version: send it all
        start, end = span or (0, info.size - 1)
        response: HttpResponseBase
        if request.method == "HEAD" or info.size == 0:
            response = HttpResponse(content_type=content_type)
        else:
            try:
                body = storage.open_range(key, start, end, if_match=info.etag)
            except (ObjectChanged, FileNotFoundError):
                continue  # replaced or deleted since `stat`: look again
            response = StreamingHttpResponse(_chunks(body), content_type=content_type)
        response.status_code = 206 if span else 200
        response["Content-Length"] = str(end - start + 1)
        if span:
            response["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        response["Accept-Ranges"] = "bytes"
        response["ETag"], response["Last-Modified"] = validators
        response["Content-Disposition"] = "inline"
        return response
    return error_response(
        Unavailable(_("This file changed while it was being sent. Try again."), code="busy")
    )
