"""Images that live in a storage connection (tasks whose image is ``storage://<id>/<key>``):
what the media view answers for them. (Reading them for exports and sizes:
``media.references.ImageRef``.)

- ``image`` of a browser-native format (JPEG, PNG, BMP, WebP, GIF) is a 302 to a presigned URL
  (presign mode: signed for the connection's public endpoint matching the request's host; no
  request to the store, so nothing is resolved or checked) or streamed through the app with
  Range support (proxy mode). TIFF is rendered by the app, since browsers cannot show it.
- ``thumb`` is made by the app once and cached in the local storage as
  ``cache/storage/<task id>.jpg`` (a sync that sees the object change drops it); a format the
  app cannot decode (WebP, GIF) gets the original instead. Bytes read to make it are given to
  ``seen`` (the caller learns the image's size from them if unknown).
- Reads go through ``connections.shared_storage``: checked against the organization's policy and
  pinned to the checked addresses. The signed /media/ token is the access check.
- Reads for people wait ``DEFECTLAB_S3_INTERACTIVE_TIMEOUT`` seconds, once, under
  ``media.breaker`` (a store that hangs is answered for at once: 503); a store that fails
  answers 502 with the reason; exports read with a job's longer timeouts and retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import PurePosixPath

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.utils.translation import gettext as _

from defectlab.errors import DefectLabError, Invalid, NotFound, TooLarge
from defectlab.images import ImageError, is_image_name, render_for_display
from defectlab.media import breaker
from defectlab.media.connections import (
    shared_storage,
    signer_for,
    storage_failure,
)
from defectlab.media.models import MediaMode, StorageConnection
from defectlab.media.references import ImageRef
from defectlab.media.s3 import S3Storage
from defectlab.media.s3proxy import serve_object
from defectlab.media.services import MediaGrant, cached_thumbnail, reference_thumbnails

MB = 1024 * 1024
BROWSER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"})


def thumbnail_key(task_id: int) -> str:
    return reference_thumbnails(task_id)[1]


def serve_reference(
    request: HttpRequest,
    ref: ImageRef,
    organization_id: int,
    grant: MediaGrant,
    seen: Callable[[bytes], None],
) -> HttpResponseBase:
    """The media view's answer for a task synced from a storage connection (see the module
    docstring). The signed /media/ token was checked by the caller: it is the access check."""
    connection, key = ref.connection(organization_id), ref.location
    max_age = max(0, grant.expires - int(time.time()))
    if grant.variant == "thumb":
        data = _thumbnail(grant.task_id, connection, key, seen)
        if data is not None:
            return _bytes(data, "image/jpeg", max_age)
    suffix = PurePosixPath(key).suffix.lower()
    if suffix not in BROWSER_SUFFIXES:
        data, content_type = render_image(connection, key)
        return _bytes(data, content_type, max_age)
    if connection.media_mode == MediaMode.PRESIGN:
        signer = signer_for(connection)
        expires = max(60, settings.MEDIA_URL_TTL)
        response: HttpResponseBase = HttpResponseRedirect(
            signer.presigned_url(key, request.get_host(), expires=expires)
        )
        # The link changes every second; caching the redirect keeps the browser's image cache.
        response["Cache-Control"] = f"private, max-age={min(max_age, expires // 2)}"
        return response
    storage = shared_storage(connection)
    try:
        with _guarded(connection, storage):
            response = serve_object(request, storage, key)
    except (BotoCoreError, ClientError) as error:
        raise _unavailable(error, storage) from None
    if response.status_code in (200, 206):
        response["Cache-Control"] = f"private, max-age={max_age}"
    return response


def _bytes(data: bytes, content_type: str, max_age: int) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = f"private, max-age={max_age}"
    response["Content-Disposition"] = "inline"
    return response


def _unavailable(error: BaseException, storage: S3Storage) -> DefectLabError:
    failure = DefectLabError(storage_failure(error, storage).message, code="storage_unavailable")
    failure.status = 502
    return failure


def _guarded(connection: StorageConnection, storage: S3Storage) -> AbstractContextManager[None]:
    """``breaker.guarded`` for this connection, its reasons in the words of the diagnosis."""
    return breaker.guarded(
        connection.pk, connection.name, lambda error: storage_failure(error, storage).message
    )


def read_object(connection: StorageConnection, key: str) -> bytes:
    """The whole object, refused above the upload limit (it is decoded in memory)."""
    limit = settings.MAX_UPLOAD_MB * MB
    storage = shared_storage(connection)
    try:
        with _guarded(connection, storage):
            size = storage.size(key)
            if size <= limit:
                with storage.open(key) as file:
                    data = file.read(limit + 1)
        if size > limit:
            raise TooLarge(
                _("This image is larger than the %(limit)s MB limit for showing it here.")
                % {"limit": settings.MAX_UPLOAD_MB}
            )
    except FileNotFoundError:
        raise NotFound(_("This file is no longer in storage.")) from None
    except (BotoCoreError, ClientError) as error:
        raise _unavailable(error, storage) from None
    if len(data) > limit:  # it grew since we looked
        raise TooLarge(
            _("This image is larger than the %(limit)s MB limit for showing it here.")
            % {"limit": settings.MAX_UPLOAD_MB}
        )
    return data


def render_image(connection: StorageConnection, key: str) -> tuple[bytes, str]:
    data = read_object(connection, key)
    try:
        return render_for_display(data)
    except ImageError as error:
        raise Invalid(str(error), code=error.code) from None


def _thumbnail(
    task_id: int, connection: StorageConnection, key: str, seen: Callable[[bytes], None]
) -> bytes | None:
    """The cached thumbnail, made on first use; None for a format the app does not decode
    (WebP, GIF), which browsers then get in full."""
    if not is_image_name(key):
        return None
    read: list[bytes] = []

    def original() -> bytes:
        read.append(read_object(connection, key))
        return read[-1]

    try:
        small = cached_thumbnail(thumbnail_key(task_id), original)
    except ImageError as error:
        if error.code == "unsupported_format":
            return None
        raise Invalid(str(error), code=error.code) from None
    if read:
        # If the sync could not tell the size from the header, now we know (and check the shapes).
        seen(read[0])
    return small
