"""Request bodies are refused by their size before they are read, and uploads stop being read at
the limit.

``BodyLimitMiddleware`` (first to see a request's body):

- a declared ``Content-Length`` above the largest body the address accepts answers 413 at once,
  without reading a byte: ``MAX_ARCHIVE_MB`` (plus room for the form around it) for the addresses
  that take uploads (``UPLOAD_PATHS``), ``MAX_IMPORT_MB`` for the task import, ``DATA_UPLOAD_MAX_MEMORY_SIZE``
  for every other one;
- a body without a length (``Transfer-Encoding: chunked``) answers 411: Django reads a request
  body only up to its ``Content-Length``, so such a body would silently arrive empty. Together
  these bound every read: nothing reads past the declared length, and the length is checked;
- on the upload addresses each file of a multipart body is counted as it streams in
  (``LimitedUploadHandler``): an image past ``MAX_UPLOAD_MB`` or an archive past
  ``MAX_ARCHIVE_MB`` stops the reading there and answers 413 naming the file. Nothing of such a
  request is kept: the whole request is refused. For signed-in pages the body is parsed here, so
  the refusal is a clean 413 whoever reads the form first; API calls parse it after
  authentication, and the API answers the same 413.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError, Invalid, TooLarge, error_response
from defectlab.ingest.uploads import MB, archive_too_large, image_too_large

# The addresses that take image and archive uploads; every other body is small.
UPLOAD_PATHS = re.compile(r"^/(?:api/projects/\d+/(?:upload|import-dataset)|projects/\d+/data)/$")
# The form fields that carry a zip archive whatever its name.
ARCHIVE_FIELDS = frozenset({"archive"})
# The task import: a JSON body, or the same JSON as an uploaded file, up to MAX_IMPORT_MB.
IMPORT_PATH = re.compile(r"^/api/projects/\d+/import/$")
FORM_ROOM = MB  # multipart boundaries and the other fields of an upload form
# A model registry's upload (an .onnx file), by the API and by the pages: MAX_MODEL_MB.
MODEL_UPLOAD_PATH = re.compile(r"^/(?:(?:api/)?models/\d+/versions|o/\d+/models)/$")


def body_limit(path: str) -> int:
    """The largest request body ``path`` accepts, in bytes."""
    if UPLOAD_PATHS.match(path):
        return max(settings.MAX_ARCHIVE_MB, settings.MAX_UPLOAD_MB) * MB + FORM_ROOM
    if IMPORT_PATH.match(path):
        return int(settings.MAX_IMPORT_MB) * MB + FORM_ROOM
    if MODEL_UPLOAD_PATH.match(path):
        return int(settings.MAX_MODEL_MB) * MB + FORM_ROOM
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def file_limit(name: str, field_name: str, path: str) -> tuple[int, Callable[[str], TooLarge]]:
    """The size limit of one uploaded file, and the refusal that names it."""
    if MODEL_UPLOAD_PATH.match(path):
        return settings.MAX_MODEL_MB * MB, model_too_large
    if (
        name.lower().endswith(".zip")
        or field_name in ARCHIVE_FIELDS
        or path.endswith("/import-dataset/")
    ):
        return settings.MAX_ARCHIVE_MB * MB, archive_too_large
    return settings.MAX_UPLOAD_MB * MB, image_too_large


class LimitedUploadHandler(FileUploadHandler):
    """Counts each file's bytes as they are parsed and stops at its limit (TooLarge)."""

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        path = self.request.path if self.request is not None else ""
        self.limit, self.refusal = file_limit(file_name or "", field_name, path)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self._close_files()
            raise self.refusal(self.file_name or "upload")
        return raw_data

    def _close_files(self) -> None:
        # The parser frees the handlers' files only when an upload is stopped, not refused; the
        # handlers keep them as ``file`` (Django's MultiPartParser._close_files assumes so too).
        for handler in getattr(self.request, "upload_handlers", ()):
            file = getattr(handler, "file", None)
            if handler is not self and file is not None:
                file.close()

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) makes the file


class BodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            self._check(request)
        except DefectLabError as refusal:
            return _refusal(request, refusal)
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> None:
        declared = request.META.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not declared:
            raise LengthRequired(
                _(
                    "Send the request with a Content-Length header; bodies without one "
                    "(chunked) are not accepted."
                )
            )
        if not declared:
            return
        if not declared.strip().isdigit():
            raise Invalid(_("The Content-Length header is not a number."))
        limit = body_limit(request.path)
        if int(declared) > limit:
            raise TooLarge(
                _("The request is %(size)s; this address accepts at most %(limit)s.")
                % {"size": filesizeformat(int(declared)), "limit": filesizeformat(limit)},
                details={"limit": limit},
            )
        uploads = UPLOAD_PATHS.match(request.path) or MODEL_UPLOAD_PATH.match(request.path)
        if uploads and request.content_type == "multipart/form-data":
            request.upload_handlers = [LimitedUploadHandler(request), *request.upload_handlers]
            if not request.path.startswith("/api/") and request.user.is_authenticated:
                # Parsed here, so the form's first reader (the CSRF check) meets no refusal.
                request.POST  # noqa: B018
                request.FILES  # noqa: B018


def model_too_large(name: str) -> TooLarge:
    """The refusal of a model file above ``MAX_MODEL_MB`` while it streams in."""
    return TooLarge(
        _("%(name)s is larger than the %(limit)s MB limit for models.")
        % {"name": name, "limit": settings.MAX_MODEL_MB},
        details={"file": name, "limit_mb": settings.MAX_MODEL_MB},
    )


class LengthRequired(DefectLabError):
    status = 411
    code = "length_required"


def _refusal(request: HttpRequest, refusal: DefectLabError) -> HttpResponse:
    """The refusal in the API's error shape for the API, as plain text for pages. The connection
    is closed: the unread body must not be taken for the next request."""
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = error_response(refusal)
    else:
        response = HttpResponse(
            refusal.message, status=refusal.status, content_type="text/plain; charset=utf-8"
        )
    response["Connection"] = "close"
    return response
