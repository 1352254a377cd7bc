"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW) behind the same `Storage` interface.

What other tools get wrong, and this module does not (DESIGN.md, "Media"):

- A presigned URL is signed by a client created *for the public endpoint* that matches the host the
  browser used, and is never rewritten afterwards: the host is part of what SigV4 signs, so a URL
  signed for ``minio:9000`` and edited to ``files.example.com`` is refused.
- Server-side encryption headers are sent only when configured: MinIO without a KMS rejects them.
- Reads stream; big uploads go in parts.

Next to it: `s3check.storage_problems` explains a broken configuration in plain words, and
`s3proxy.serve_object` streams byte ranges through the app for networks that cannot reach the
bucket."""

from __future__ import annotations

import io
import logging
import mimetypes
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NamedTuple
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from django.conf import settings
from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.media.storage import StorageError, check_key

if TYPE_CHECKING:
    import boto3
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

Encryption = Literal["none", "AES256", "aws:kms"]
ENCRYPTIONS: tuple[Encryption, ...] = ("none", "AES256", "aws:kms")
MB = 1024 * 1024
CHUNK = 64 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})


def _default_public_endpoints() -> Mapping[str, str]:
    return dict(settings.S3_PUBLIC_ENDPOINTS)


def check_endpoint_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise Invalid(
            _("%(url)s is not an endpoint URL like https://s3.example.com or http://10.0.0.5:9000.")
            % {"url": url},
            code="invalid_endpoint",
        )
    return url


@dataclass(frozen=True, kw_only=True)
class S3Config:
    bucket: str
    endpoint_url: str | None = None  # None: AWS, found from the region
    prefix: str = ""  # every key lives under it; normalised to "" or "a/b/"
    region: str = "us-east-1"
    access_key: str | None = None  # None: boto3's own chain (environment, instance role)
    secret_key: str | None = field(default=None, repr=False)
    path_style: bool = False  # MinIO and most self-hosted stores want True
    sse: Encryption = "none"
    kms_key_id: str | None = None  # with "aws:kms"; None: the account's default S3 key
    # Host the browser reached the app at (as in the Host header, port included when not
    # default) → the S3 endpoint URL that browsers on that network can reach.
    public_endpoints: Mapping[str, str] = field(default_factory=_default_public_endpoints)

    def __post_init__(self) -> None:
        if not self.bucket.strip():
            raise Invalid(_("Enter the name of the bucket."), code="invalid_bucket")
        prefix = "/".join(part for part in self.prefix.split("/") if part)
        if prefix:
            try:
                check_key(prefix)
            except StorageError:
                raise Invalid(
                    _("%(prefix)s cannot be used as a folder inside a bucket.")
                    % {"prefix": self.prefix},
                    code="invalid_prefix",
                ) from None
        object.__setattr__(self, "prefix", f"{prefix}/" if prefix else "")
        if self.endpoint_url is not None:
            check_endpoint_url(self.endpoint_url)
        if self.sse not in ENCRYPTIONS:
            raise Invalid(
                _("Server-side encryption must be one of: %(choices)s.")
                % {"choices": ", ".join(ENCRYPTIONS)},
                code="invalid_encryption",
            )
        endpoints = {
            host.strip().lower(): check_endpoint_url(url)
            for host, url in self.public_endpoints.items()
        }
        object.__setattr__(self, "public_endpoints", MappingProxyType(endpoints))


class StoredObject(NamedTuple):
    key: str  # relative to the config's prefix
    size: int
    etag: str  # without the quotes S3 puts around it
    last_modified: datetime


class ObjectChanged(StorageError):
    """The object was replaced between looking at it and reading it (an ``If-Match`` failed)."""


# boto3 (about 24 MB of memory in a process) is imported where a client is made, so processes
# that never talk to S3 (the embedded default, the job worker at rest) never load it.
_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def make_client(
    config: S3Config,
    endpoint_url: str | None,
    *,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    attempts: int = 4,
) -> S3Client:
    global _session
    import boto3
    from botocore.config import Config as BotoConfig

    # One session for every client: creating a session reloads botocore's service models
    # (~0.2 s), a client from a warm one takes ~10 ms. Sessions are not thread-safe: hence the lock.
    with _session_lock:
        _session = _session or boto3.session.Session()
        return _session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key or None,
            aws_secret_access_key=config.secret_key or None,
            config=BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": "path" if config.path_style else "auto"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": attempts},
                # botocore ≥ 1.36 adds CRC checksums to every upload by default, which many
                # S3-compatible stores (older MinIO, Ceph, …) reject; send them only if required.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def encryption_args(config: S3Config) -> dict[str, Any]:
    """The SSE parameters for a PUT: none at all unless configured (MinIO rejects them)."""
    if config.sse == "none":
        return {}
    args: dict[str, Any] = {"ServerSideEncryption": config.sse}
    if config.sse == "aws:kms" and config.kms_key_id:
        args["SSEKMSKeyId"] = config.kms_key_id
    return args


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class _BodyReader(io.RawIOBase):
    """Adapts botocore's StreamingBody (which checks the length it promised) to a raw file."""

    def __init__(self, body: StreamingBody) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _canonical(key: str) -> str:
    return str(check_key(key))


def _without_port(host: str) -> str:
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


class S3Storage:
    def __init__(self, config: S3Config) -> None:
        self.config = config
        # Public so callers (and tests) can register botocore event hooks.
        self.client: S3Client = make_client(config, config.endpoint_url)
        from boto3.s3.transfer import TransferConfig

        part = max(5, settings.S3_MULTIPART_MB) * MB  # S3's smallest part is 5 MB
        self._transfer = TransferConfig(
            multipart_threshold=part, multipart_chunksize=part, max_concurrency=4
        )
        self._signers: dict[str, S3Client] = {}
        self._signers_lock = threading.Lock()

    def close(self) -> None:
        """Close the pooled connections (they would otherwise wait for the garbage collector)."""
        with self._signers_lock:
            for client in [self.client, *self._signers.values()]:
                client.close()
            self._signers.clear()

    def _object_key(self, key: str) -> str:
        return self.config.prefix + _canonical(key)

    # ------------------------------------------------------------------ the Storage protocol

    def save(self, key: str, data: bytes) -> None:
        self.save_stream(key, io.BytesIO(data))

    def save_stream(self, key: str, file: BinaryIO) -> None:
        """Upload from a file without reading it into memory; in parts above the threshold.

        S3 makes an object visible only when its upload completes, and s3transfer aborts a
        failed multipart upload, so readers never see half a file."""
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        self.client.upload_fileobj(
            file,
            self.config.bucket,
            self._object_key(key),
            ExtraArgs={"ContentType": content_type, **encryption_args(self.config)},
            Config=self._transfer,
        )

    def read(self, key: str) -> bytes:
        with self.open(key) as file:
            return file.read()

    def open(self, key: str) -> BinaryIO:
        """A file that streams the object: nothing is read before the caller reads."""
        return self._get(key, {})

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.config.bucket, Key=self._object_key(key))

    # ------------------------------------------------------------------ beyond the protocol

    def stat(self, key: str) -> StoredObject:
        try:
            head = self.client.head_object(Bucket=self.config.bucket, Key=self._object_key(key))
        except ClientError as error:
            if error_code(error) in _MISSING:
                raise FileNotFoundError(key) from None
            raise
        return StoredObject(
            _canonical(key), head["ContentLength"], head["ETag"].strip('"'), head["LastModified"]
        )

    def size(self, key: str) -> int:
        return self.stat(key).size

    def open_range(
        self, key: str, start: int, end: int, *, if_match: str | None = None
    ) -> BinaryIO:
        """Stream bytes ``start`` to ``end`` inclusive (as in HTTP). With ``if_match`` (an etag),
        raise `ObjectChanged` instead of reading a different version of the object."""
        if not 0 <= start <= end:
            raise ValueError(f"bad byte range {start}-{end}")
        extra: dict[str, Any] = {"Range": f"bytes={start}-{end}"}
        if if_match:
            extra["IfMatch"] = f'"{if_match}"'
        return self._get(key, extra)

    def _get(self, key: str, extra: dict[str, Any]) -> BinaryIO:
        try:
            response = self.client.get_object(
                Bucket=self.config.bucket, Key=self._object_key(key), **extra
            )
        except ClientError as error:
            if error_code(error) in _MISSING:
                raise FileNotFoundError(key) from None
            if error_code(error) == "PreconditionFailed":
                raise ObjectChanged(key) from None
            raise
        return io.BufferedReader(_BodyReader(response["Body"]), CHUNK)

    def iter_keys(
        self, prefix: str = "", start_after: str | None = None, *, page_size: int = 1000
    ) -> Iterator[StoredObject]:
        """Every object under ``prefix`` in key order, after ``start_after`` if given, fetched
        ``page_size`` at a time (S3's most is 1000).

        Folder markers (keys ending in ``/``) are skipped, and so are keys this app cannot
        address (``..``, backslashes, doubled slashes), with a warning in the log."""
        if prefix.startswith("/") or "\\" in prefix or ".." in prefix.split("/"):
            raise StorageError(f"invalid key prefix: {prefix!r}")
        params: dict[str, Any] = {
            "Bucket": self.config.bucket,
            "Prefix": self.config.prefix + prefix,
        }
        if start_after:
            params["StartAfter"] = self._object_key(start_after)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            **params, PaginationConfig={"PageSize": page_size}
        )
        skip = len(self.config.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][skip:]
                if key.endswith("/"):
                    continue
                try:
                    usable = _canonical(key) == key
                except StorageError:
                    usable = False
                if not usable:
                    logger.warning("skipping object with an unusable key: %r", item["Key"])
                    continue
                yield StoredObject(key, item["Size"], item["ETag"].strip('"'), item["LastModified"])

    def public_endpoint_for(self, request_host: str) -> str | None:
        """The endpoint browsers that reached the app at ``request_host`` can reach: the one mapped
        to that host (port included, then without the port), else the storage's own."""
        host = request_host.strip().lower()
        mapping = self.config.public_endpoints
        return mapping.get(host) or mapping.get(_without_port(host)) or self.config.endpoint_url

    def presigned_url(self, key: str, request_host: str, expires: int = 600) -> str:
        if not 0 < expires <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires must be 1 to {MAX_PRESIGN_SECONDS} seconds")
        endpoint = self.public_endpoint_for(request_host)
        return self._signer(endpoint).generate_presigned_url(
            "get_object",
            Params={"Bucket": self.config.bucket, "Key": self._object_key(key)},
            ExpiresIn=expires,
        )

    def _signer(self, endpoint: str | None) -> S3Client:
        """A client whose endpoint *is* the public one, so the signature covers that host.
        Signing happens locally: these clients never send a request."""
        if endpoint == self.config.endpoint_url:
            return self.client
        assert endpoint is not None
        with self._signers_lock:
            if endpoint not in self._signers:
                self._signers[endpoint] = make_client(self.config, endpoint)
            return self._signers[endpoint]
