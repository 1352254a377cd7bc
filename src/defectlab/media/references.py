"""Where a task's image is: ``Task.image`` parsed once, into an ``ImageRef`` that can be read.

``Task.image`` is a string of one of three forms, and this module is the one place that tells
them apart (the media view, exports, size learning and storage sync all ask it):

- ``stored``: a key in our own storage (an upload, a URL import, a dataset import's image);
- ``url``: an ``http://`` or ``https://`` address, fetched through the guarded fetcher under the
  organization's allowlist each time it is needed (that is what "by reference" means);
- ``storage``: ``storage://<connection id>/<key>``, an object in one of the organization's
  storage connections (a sync of a source makes these; the key is relative to its prefix).

An ``s3://bucket/key`` address is not a fourth form: without credentials nothing can read it.
An import turns one into ``storage://`` when the project has a storage connection on that
bucket whose prefix holds the key (``s3_resolver``), and refuses it otherwise. Anything
else (an address of another scheme stored long ago) parses to None: not viewable, not
exportable.

Reading: ``read`` gives the whole image (up to the upload limit), ``open`` a stream (exports),
``size`` the displayed size from the header only (a ranged read of ``HEAD_BYTES``; the whole
image only when its header is longer). Failures: the fetcher's errors for ``url`` (they name
the rule that refused), OSError for ``storage`` (a store's failure, in s3check's plain words;
FileNotFoundError for a missing object) and for ``stored``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Literal
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from defectlab.images import image_size
from defectlab.ingest.services import (
    HEAD_BYTES,
    fetch_referenced,
    fetch_referenced_head,
)
from defectlab.media.connections import connection_of, shared_storage, storage_failure
from defectlab.media.models import StorageConnection, StorageRole
from defectlab.media.storage import default_storage

Kind = Literal["stored", "url", "storage"]
STORAGE_SCHEME = "storage://"
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageRef:
    kind: Kind
    location: str  # the key in our storage, the address, or the key in the connection
    connection_id: int = 0  # for ``storage``

    @classmethod
    def parse(cls, image: str) -> ImageRef | None:
        """The reference ``image`` (a ``Task.image``) holds; None for one nothing can read."""
        if "://" not in image:
            return cls("stored", image) if image else None
        if image.startswith(("http://", "https://")):
            return cls("url", image)
        if image.startswith(STORAGE_SCHEME):
            connection, _slash, key = image[len(STORAGE_SCHEME) :].partition("/")
            if connection.isascii() and connection.isdigit() and key:
                return cls("storage", key, int(connection))
        return None

    @classmethod
    def in_storage(cls, connection_id: int, key: str) -> ImageRef:
        return cls("storage", key, connection_id)

    def __str__(self) -> str:
        """The form kept in ``Task.image``."""
        if self.kind == "storage":
            return f"{STORAGE_SCHEME}{self.connection_id}/{self.location}"
        return self.location

    @property
    def stored(self) -> bool:
        return self.kind == "stored"

    @property
    def place(self) -> str:
        """Where the bytes come from: one host or storage connection (retries are per place)."""
        if self.kind == "url":
            return urlsplit(self.location).netloc.lower()
        if self.kind == "storage":
            return f"storage:{self.connection_id}"
        return "stored"

    def connection(self, organization_id: int) -> StorageConnection:
        """The storage connection of a ``storage`` reference (NotFound once it was removed)."""
        return connection_of(organization_id, self.connection_id)

    def read(self, organization_id: int, *, timeout: float | None = None) -> bytes:
        """The whole image (refused above the upload limit for ``url``)."""
        if self.kind == "url":
            return fetch_referenced(organization_id, self.location, timeout=timeout)
        with self.open(organization_id) as file:
            return file.read()

    def open(self, organization_id: int) -> IO[bytes]:
        """The image's bytes as a stream, read with a job's patience (for exports)."""
        if self.kind == "stored":
            return default_storage().open(self.location)
        if self.kind == "url":
            return io.BytesIO(fetch_referenced(organization_id, self.location))
        storage = shared_storage(self.connection(organization_id), background=True)
        try:
            return storage.open(self.location)
        except (BotoCoreError, ClientError) as error:
            raise OSError(storage_failure(error, storage).message) from error

    def size(self, organization_id: int, *, timeout: float | None = None) -> tuple[int, int] | None:
        """The displayed size from the image's first ``HEAD_BYTES`` (the whole image only when
        its header is longer); None when the bytes are no image Pillow knows."""
        if self.kind == "url":
            head = fetch_referenced_head(organization_id, self.location, timeout=timeout)
            return _size_of(head, lambda: self.read(organization_id, timeout=timeout))
        if self.kind == "stored":
            with default_storage().open(self.location) as file:
                return image_size(file.read(settings.MAX_UPLOAD_MB * MB))
        storage = shared_storage(self.connection(organization_id))

        def whole() -> bytes:
            with storage.open(self.location) as file:
                return file.read(settings.MAX_UPLOAD_MB * MB)

        try:
            with storage.open_range(self.location, 0, HEAD_BYTES - 1) as file:
                return _size_of(file.read(), whole)
        except (BotoCoreError, ClientError) as error:
            raise OSError(storage_failure(error, storage).message) from error


def _size_of(head: bytes, whole: Callable[[], bytes]) -> tuple[int, int] | None:
    """The size from an image's first bytes; from ``whole()`` only when they were all the header
    (a header longer than ``HEAD_BYTES``)."""
    size = image_size(head)
    if size is None and len(head) >= HEAD_BYTES:
        size = image_size(whole())
    return size


def s3_resolver(project_id: int) -> Callable[[str], ImageRef | None]:
    """A function giving the ``storage://`` reference of an ``s3://bucket/key`` address, through
    the project's storage connection on that bucket whose prefix holds the key (a source before
    a target, then the oldest first), or None when the project has none. The connections are
    read once, on first use."""
    connections: list[StorageConnection] | None = None

    def resolve(address: str) -> ImageRef | None:
        nonlocal connections
        parts = urlsplit(address)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if parts.scheme != "s3" or not bucket or not key:
            return None
        if connections is None:
            connections = sorted(
                StorageConnection.objects.filter(project_id=project_id),
                key=lambda c: (c.role != StorageRole.SOURCE, c.pk),
            )
        for connection in connections:
            prefix = connection.prefix
            if connection.bucket == bucket and key.startswith(prefix) and key != prefix:
                return ImageRef.in_storage(connection.pk, key[len(prefix) :])
        return None

    return resolve
