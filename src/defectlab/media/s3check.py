"""“Test connection” for an S3 storage: what is wrong, in plain words, instead of a traceback.

The check lists the bucket (address, TLS, credentials, bucket, read permission), compares the
bucket's region with the configured one, then writes and deletes a tiny probe object with the
configured server-side encryption (write and delete permission; whether the store supports that
encryption). Timeouts are short and nothing is retried: the person pressing the button wants to
know what happens now."""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)
from django.utils.translation import gettext as _

from defectlab.errors import Invalid
from defectlab.media.s3 import S3Config, encryption_args, error_code, make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
_WRONG_REGION = frozenset(
    {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}
)


class StorageProblem(Invalid):
    """One thing wrong with a storage configuration. ``code`` is stable (for the UI and tests):
    dns, refused, unreachable, timeout, tls, credentials, access_denied, bucket_missing,
    region_mismatch, sse_unsupported, invalid, error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def storage_problems(config: S3Config, *, timeout: float = 5.0) -> list[StorageProblem]:
    """Everything wrong with ``config``, most fundamental first; an empty list means it works.
    A problem that stops the check (no connection, no bucket) is the only one returned."""
    client = make_client(
        config, config.endpoint_url, connect_timeout=timeout, read_timeout=timeout, attempts=1
    )
    try:
        return problems_on(client, config, timeout)
    finally:
        client.close()


def problems_on(client: S3Client, config: S3Config, timeout: float) -> list[StorageProblem]:
    """``storage_problems``' steps (list, region, write and delete a probe) on a client the
    caller made: ``connections`` passes one pinned to the addresses its policy checked."""
    where = _Where(client.meta.endpoint_url, config, timeout)
    try:
        client.list_objects_v2(Bucket=config.bucket, Prefix=config.prefix, MaxKeys=1)
    except (BotoCoreError, ClientError) as error:
        return [_diagnose(error, where, "list")]
    problems: list[StorageProblem] = []
    actual = _bucket_region(client, config)
    if actual and actual != config.region:
        problems.append(_region_problem(where, actual))
    return problems + _probe_write(client, config, where)


class _Where:
    """What the messages name: the host and port we tried, the bucket, the settings."""

    def __init__(self, endpoint_url: str, config: S3Config, timeout: float) -> None:
        parts = urlsplit(endpoint_url)
        self.host = parts.hostname or endpoint_url
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.config = config
        self.timeout = timeout


def _bucket_region(client: S3Client, config: S3Config) -> str | None:
    try:
        head = client.head_bucket(Bucket=config.bucket)
    except (BotoCoreError, ClientError):
        return None  # listing worked; a store without HeadBucket is not a problem
    headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return head.get("BucketRegion") or headers.get("x-amz-bucket-region")


def _probe_write(client: S3Client, config: S3Config, where: _Where) -> list[StorageProblem]:
    probe = f"{config.prefix}.defectlab-connection-test-{uuid.uuid4().hex}"
    sse = encryption_args(config)
    try:
        put = client.put_object(Bucket=config.bucket, Key=probe, Body=b"", **sse)
    except ClientError as error:
        # A store that refuses SSE answers NotImplemented (MinIO), InvalidArgument, KMS errors…
        # Rather than trust the code, try once more without encryption.
        if sse and _plain_put_works(client, config, probe):
            return [_sse_problem(config)]
        return [_diagnose(error, where, "write")]
    except BotoCoreError as error:
        return [_diagnose(error, where, "write")]
    problems = []
    if sse and put.get("ServerSideEncryption") != config.sse:
        problems.append(_sse_problem(config, ignored=True))  # accepted, not applied
    try:
        client.delete_object(Bucket=config.bucket, Key=probe)
    except (BotoCoreError, ClientError) as error:
        problems.append(_diagnose(error, where, "delete"))
    return problems


def _plain_put_works(client: S3Client, config: S3Config, probe: str) -> bool:
    try:
        client.put_object(Bucket=config.bucket, Key=probe, Body=b"")
    except (BotoCoreError, ClientError):
        return False
    # The probe is empty, and the SSE problem is the one to report even if this fails.
    with contextlib.suppress(BotoCoreError, ClientError):
        client.delete_object(Bucket=config.bucket, Key=probe)
    return True


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything behind it: botocore keeps urllib3's error in ``kwargs["error"]``,
    urllib3 chains the socket error as ``__cause__``."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        kwargs: Any = getattr(current, "kwargs", None)
        inner = kwargs.get("error") if isinstance(kwargs, dict) else None
        todo += [current.__cause__, current.__context__]
        if isinstance(inner, BaseException):
            todo.append(inner)


def _diagnose(error: BaseException, where: _Where, action: str) -> StorageProblem:
    if isinstance(error, ClientError):
        return _diagnose_answer(error, where, action)
    names = {"host": where.host, "port": where.port, "seconds": where.timeout}
    if isinstance(error, NoCredentialsError):
        return StorageProblem(
            "credentials", _("No access key and secret key are set for this storage.")
        )
    if isinstance(error, ParamValidationError):
        return StorageProblem(
            "invalid", _("The bucket name is not valid: %(reason)s") % {"reason": str(error)}
        )
    causes = list(_causes(error))
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)) or any(
        isinstance(cause, TimeoutError) for cause in causes
    ):
        return StorageProblem(
            "timeout",
            _(
                "%(host)s did not answer within %(seconds)s seconds. Check the endpoint URL and "
                "the firewall, and that the storage is running."
            )
            % names,
        )
    if isinstance(error, SSLError):
        return StorageProblem(
            "tls",
            _(
                "The secure (TLS) connection to %(host)s failed: %(reason)s. Check that the "
                "endpoint URL starts with the right http:// or https://, and that the server's "
                "certificate is trusted."
            )
            % {**names, "reason": next((c for c in causes if isinstance(c, ssl.SSLError)), error)},
        )
    if any(isinstance(cause, socket.gaierror) for cause in causes):
        return StorageProblem(
            "dns",
            _("The name %(host)s could not be found (DNS). Check the endpoint URL for typos.")
            % names,
        )
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return StorageProblem(
            "refused",
            _(
                "%(host)s refused the connection on port %(port)s: nothing is listening there, "
                "or a firewall rejects it. Check the endpoint URL and its port."
            )
            % names,
        )
    if isinstance(error, EndpointConnectionError) or any(
        isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)
        for cause in causes
    ):
        return StorageProblem(
            "unreachable",
            _("%(host)s cannot be reached from this server. Check the network and the firewall.")
            % names,
        )
    return StorageProblem(
        "error", _("Connecting to %(host)s failed: %(reason)s") % {**names, "reason": error}
    )


def _diagnose_answer(error: ClientError, where: _Where, action: str) -> StorageProblem:
    code = error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    bucket = {"bucket": where.config.bucket, "host": where.host}
    if code in _CREDENTIALS:
        return StorageProblem(
            "credentials",
            _(
                "The storage did not accept the access key and secret key. Check both for typos, "
                "and that the key is still active."
            ),
        )
    if code == "NoSuchBucket":
        return StorageProblem(
            "bucket_missing",
            _("There is no bucket named %(bucket)s at %(host)s. Create it, or check the name.")
            % bucket,
        )
    if code in _WRONG_REGION or status == 301:
        details: Any = error.response.get("Error", {})
        headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return _region_problem(where, details.get("Region") or headers.get("x-amz-bucket-region"))
    if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
        messages = {
            "list": _(
                "The keys are valid, but they may not list the files in bucket %(bucket)s. "
                "Allow listing, reading, writing and deleting."
            ),
            "write": _(
                "The keys may read bucket %(bucket)s but not write to it. Allow writing and "
                "deleting too."
            ),
            "delete": _(
                "The keys may write to bucket %(bucket)s but not delete from it. Allow deleting "
                "too."
            ),
        }
        return StorageProblem("access_denied", messages[action] % bucket)
    return StorageProblem(
        "error",
        _("The storage answered with an error: %(code)s %(message)s")
        % {"code": code or status, "message": error.response.get("Error", {}).get("Message", "")},
    )


def _region_problem(where: _Where, actual: str | None) -> StorageProblem:
    if actual:
        message = _(
            "Bucket %(bucket)s is in region %(actual)s, but the region set is %(region)s. "
            "Set the region to %(actual)s."
        )
    else:
        message = _("The region set, %(region)s, is not the region of bucket %(bucket)s.")
    return StorageProblem(
        "region_mismatch",
        message % {"bucket": where.config.bucket, "actual": actual, "region": where.config.region},
    )


def _sse_problem(config: S3Config, *, ignored: bool = False) -> StorageProblem:
    if ignored:
        message = _(
            "The storage saved the test file without the server-side encryption that is set "
            "(%(sse)s). Set encryption up in the storage, or set it to none here."
        )
    else:
        message = _(
            "The storage refused the server-side encryption that is set (%(sse)s): it does not "
            "support it, or the KMS key cannot be used. Set encryption to none, or set it up in "
            "the storage first (MinIO needs a KMS for it)."
        )
    return StorageProblem("sse_unsupported", message % {"sse": config.sse})
