"""S3-compatible storage connections of an organization: creating and changing them, reaching
them safely, and testing them. ``transfer.sync`` syncs sources and writes to targets;
``media.objects`` serves the images synced from them, ``media.references`` reads them.

Decisions:

- A connection belongs to one project, as its *source* (objects become tasks) or its *target*
  (submitted annotations and export archives are written to it). Project and role are fixed at
  creation; everything else can change. The secret key is required, stored only encrypted
  (Fernet, ``media.secrets``) and never returned. An access key is required too: a connection
  never falls back to boto3's own credential chain, which would hand the server's environment
  or instance-role credentials to a tenant.
- The endpoint is an address a user typed, so every use that connects (listing, reading,
  writing, the connection test) first checks it with the guarded fetcher's ``check_url`` against
  the organization's allowlist — a MinIO on 10.x has to be allowlisted by an admin, and a refusal
  names the rule — and then *pins* the boto3 client to the addresses that were checked: its
  connections go to those addresses and never resolve the name again, so a DNS answer that
  changes after the check (rebinding) cannot reach an unchecked address. Proxies from the
  environment are ignored for the same reason. A blank endpoint means AWS S3, whose endpoint
  botocore derives from the (validated) region name; it is not checked or pinned.
- Presigning needs no connection (signatures are computed locally), so media in presign mode
  neither resolves nor checks the endpoint. Presigned links are signed for the connection's own
  ``public_endpoints`` (app host → endpoint browsers reach). A self-hosted connection without
  its own map falls back to ``DEFECTLAB_S3_PUBLIC_ENDPOINTS``, the map of the deployment's own
  MinIO; a connection to another store sets its own map (else its links would name the
  deployment's host).
- Tasks synced from a source keep ``storage://<connection id>/<key>`` as their image (the key
  relative to the prefix). A connection's bucket, prefix or endpoint may change later (moving a
  MinIO, say): its tasks then read from the new place. Deleting a connection keeps its tasks and
  annotations; their images answer 404 from then on.
- Reads for people and exports reuse a checked, pinned storage per connection for up to
  ``STORAGE_TTL`` seconds (pinning makes reuse safe; a narrowed allowlist applies to them
  within that time). Jobs check and pin afresh on every run.
- Reads a person waits on wait ``DEFECTLAB_S3_INTERACTIVE_TIMEOUT`` seconds and are not retried
  (``media.breaker`` keeps a hanging store from holding the web's threads); jobs and exports
  wait longer and retry.
- A failure is *permanent* when trying again cannot help until someone changes a setting (the
  keys, the bucket, its permissions, its region, http:// against https://): it is a
  `s3check.StorageProblem` (a refusal: its job fails at once). Anything else (no answer, a
  refused connection, the store's own 5xx) is `StorageUnavailable`, which jobs retry. Both say
  what is wrong in s3check's plain words.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from urllib3.exceptions import NewConnectionError

from defectlab.errors import Conflict, Invalid, NotFound, Unavailable
from defectlab.ingest.fetcher import Resolver, check_url
from defectlab.ingest.policy import FetchFailed, IPAddress, Refused
from defectlab.ingest.services import allowlist_for
from defectlab.media import breaker, s3check
from defectlab.media.models import (
    Encryption,
    MediaMode,
    StorageConnection,
    StorageRole,
)
from defectlab.media.s3 import S3Config, S3Storage, check_endpoint_url, make_client
from defectlab.media.secrets import decrypt_secret, encrypt_secret
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import User
from defectlab.tenancy.services import record

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_BUCKET = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
# Fields a person sets (besides project, role and the secret key).
EDITABLE = (
    "name",
    "endpoint_url",
    "bucket",
    "prefix",
    "region",
    "path_style",
    "public_endpoints",
    "sse",
    "kms_key_id",
    "access_key",
    "media_mode",
)


# ---------------------------------------------------------------------------- create, change


class Owner(Protocol):
    """The project a connection belongs to (``labeling.Project``; media sits below labeling
    and knows it only by these two fields and the foreign key by name)."""

    @property
    def pk(self) -> Any: ...

    @property
    def organization_id(self) -> int: ...


def _clean(fields: dict[str, Any], secret_key: str) -> dict[str, Any]:
    """``fields`` checked and normalised (Invalid names the field), as they will be stored."""
    name = str(fields.get("name") or "").strip()
    if not name:
        raise Invalid(_("A storage connection needs a name."), details={"field": "name"})
    endpoint = str(fields.get("endpoint_url") or "").strip().rstrip("/")
    region = str(fields.get("region") or "us-east-1").strip().lower()
    if not _REGION.match(region):
        raise Invalid(
            _("%(region)s is not a region name like us-east-1.") % {"region": region},
            details={"field": "region"},
        )
    bucket = str(fields.get("bucket") or "").strip()
    if bucket and not _BUCKET.match(bucket):
        raise Invalid(
            _("A bucket name holds only letters, digits, dots, hyphens and underscores."),
            details={"field": "bucket"},
        )
    access_key = str(fields.get("access_key") or "").strip()
    if not access_key or not secret_key:
        raise Invalid(
            _("Enter the access key and the secret key of the storage."),
            details={"field": "access_key" if not access_key else "secret_key"},
        )
    public = fields.get("public_endpoints") or {}
    if not isinstance(public, Mapping) or not all(
        isinstance(host, str) and host.strip() and isinstance(url, str)
        for host, url in public.items()
    ):
        raise Invalid(
            _("Public endpoints map the host people reach DefectLab at to an endpoint URL."),
            details={"field": "public_endpoints"},
        )
    sse = fields.get("sse") or Encryption.NONE
    if sse not in Encryption.values:
        raise Invalid(
            _("Server-side encryption must be one of: %(choices)s.")
            % {"choices": ", ".join(Encryption.values)},
            details={"field": "sse"},
        )
    media_mode = fields.get("media_mode") or MediaMode.PRESIGN
    if media_mode not in MediaMode.values:
        raise Invalid(
            _("Images are shown by presigned link or through DefectLab (presign or proxy)."),
            details={"field": "media_mode"},
        )
    kms_key_id = str(fields.get("kms_key_id") or "").strip() if sse == Encryption.KMS else ""
    config = S3Config(  # checks bucket, prefix, endpoint and public endpoints in plain words
        bucket=bucket,
        endpoint_url=endpoint or None,
        prefix=str(fields.get("prefix") or ""),
        region=region,
        public_endpoints={
            host.strip().lower(): check_endpoint_url(url.strip().rstrip("/"))
            for host, url in public.items()
        },
    )
    return {
        "name": name[:100],
        "endpoint_url": endpoint,
        "bucket": bucket,
        "prefix": config.prefix,
        "region": region,
        "path_style": bool(fields.get("path_style", bool(endpoint))),
        "public_endpoints": dict(config.public_endpoints),
        "sse": sse,
        "kms_key_id": kms_key_id,
        "access_key": access_key,
        "media_mode": media_mode,
    }


def _name_taken(name: str) -> Conflict:
    return Conflict(
        _("This project already has a storage connection named %(name)s.") % {"name": name},
        details={"field": "name"},
    )


def draft_connection(
    project: Owner, *, role: str, secret_key: str, **fields: Any
) -> StorageConnection:
    """An unsaved connection from settings a person entered: checked, normalised, ready to test
    (with ``connection_problems(draft, secret_key=...)``) or to save."""
    if role not in StorageRole.values:
        raise Invalid(
            _("A storage is a source (images come in) or a target (annotations go out)."),
            details={"field": "role"},
        )
    return StorageConnection(
        organization_id=project.organization_id,
        project_id=project.pk,
        role=role,
        **_clean(fields, secret_key),
    )


def create_connection(
    project: Owner, user: User | None, *, role: str, secret_key: str, **fields: Any
) -> StorageConnection:
    """A new connection for ``project``, in the audit trail as ``user``'s. The caller checks the
    user's role."""
    connection = draft_connection(project, role=role, secret_key=secret_key, **fields)
    connection.secret_key_encrypted = encrypt_secret(secret_key)
    connection.created_by = user
    try:
        with transaction.atomic():
            connection.save()
    except IntegrityError:
        raise _name_taken(connection.name) from None
    record(
        None,
        AuditAction.STORAGE_CREATED,
        organization=project.organization_id,
        target=connection,
        actor=user,
        data={
            "name": connection.name,
            "role": connection.role,
            "project": project.pk,
            "endpoint_url": connection.endpoint_url,
            "bucket": connection.bucket,
        },
    )
    return connection


def update_connection(
    connection: StorageConnection,
    changes: Mapping[str, Any],
    secret_key: str | None = None,
    *,
    actor: User | None = None,
) -> list[str]:
    """Apply ``changes`` (and a new secret key, if given); returns the names of what changed,
    ``secret_key`` included, never its value (so does the audit row, as ``actor``'s). Project and
    role are not among ``EDITABLE``: they cannot change (the caller refuses them)."""
    current = {name: getattr(connection, name) for name in EDITABLE}
    merged = current | {name: value for name, value in changes.items() if name in EDITABLE}
    secret = secret_key if secret_key else decrypt_secret(connection.secret_key_encrypted)
    cleaned = _clean(merged, secret)
    changed = [name for name in EDITABLE if cleaned[name] != current[name]]
    for name in changed:
        setattr(connection, name, cleaned[name])
    if secret_key:
        connection.secret_key_encrypted = encrypt_secret(secret_key)
        changed.append("secret_key")
    if changed:
        try:
            with transaction.atomic():
                connection.save()
        except IntegrityError:
            raise _name_taken(cleaned["name"]) from None
        _forget_signer(connection.pk)
        _forget_storages(connection.pk)
        record(
            None,
            AuditAction.STORAGE_UPDATED,
            organization=connection.organization_id,
            target=connection,
            actor=actor,
            data={"changed": changed},
        )
    return changed


def delete_connection(connection: StorageConnection, actor: User | None = None) -> None:
    """Remove the connection and its sync records (``actor`` did, says the audit trail). Its
    tasks and their annotations stay."""
    record(
        None,
        AuditAction.STORAGE_DELETED,
        organization=connection.organization_id,
        target=connection,
        actor=actor,
        data={"name": connection.name, "role": connection.role, "project": connection.project_id},
    )
    connection_id = connection.pk
    connection.delete()
    _forget_signer(connection_id)
    _forget_storages(connection_id)


# ---------------------------------------------------------------------------- reaching a store


class StorageUnavailable(Unavailable):
    """The store failed in a way worth retrying (network, the store's own error): the job
    runner retries it; the message is the diagnosis."""

    code = "storage_unavailable"


# s3check's codes for what only a change of settings can cure.
PERMANENT = frozenset(
    {"credentials", "access_denied", "bucket_missing", "region_mismatch", "tls", "invalid"}
)


def config_of(connection: StorageConnection, *, secret_key: str | None = None) -> S3Config:
    return S3Config(
        bucket=connection.bucket,
        endpoint_url=connection.endpoint_url or None,
        prefix=connection.prefix,
        region=connection.region,
        access_key=connection.access_key,
        secret_key=secret_key or decrypt_secret(connection.secret_key_encrypted),
        path_style=connection.path_style,
        sse=cast(Any, connection.sse),
        kms_key_id=connection.kms_key_id or None,
        public_endpoints=public_endpoints_of(connection),
    )


def public_endpoints_of(connection: StorageConnection) -> dict[str, str]:
    """The connection's own map of app host → endpoint browsers reach; a self-hosted connection
    without one uses the deployment's DEFECTLAB_S3_PUBLIC_ENDPOINTS (meant for the MinIO the
    deployment runs, e.g. deploy/compose.yaml's)."""
    if connection.public_endpoints:
        return dict(connection.public_endpoints)
    return dict(settings.S3_PUBLIC_ENDPOINTS) if connection.endpoint_url else {}


def checked_addresses(
    organization_id: int, config: S3Config, resolver: Resolver | None = None
) -> tuple[IPAddress, ...] | None:
    """The addresses the endpoint may be reached at under the organization's policy (Refused,
    or FetchFailed for DNS, otherwise); None for AWS (no endpoint given)."""
    if config.endpoint_url is None:
        return None
    checked = check_url(
        config.endpoint_url, allowlist=allowlist_for(organization_id), resolver=resolver
    )
    return checked.addresses


def pinned_client(
    config: S3Config,
    addresses: Sequence[IPAddress] | None,
    *,
    connect_timeout: float = 10,
    read_timeout: float = 60,
    attempts: int = 4,
) -> S3Client:
    client = make_client(
        config,
        config.endpoint_url,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        attempts=attempts,
    )
    if addresses is not None:
        _pin(client, tuple(str(address) for address in addresses))
    return client


def _pin(client: S3Client, addresses: tuple[str, ...]) -> None:
    """Make every connection of ``client`` go to one of ``addresses`` (first that answers),
    whatever host a request names; TLS still verifies the certificate for the URL's host name.
    Done before the first request (botocore creates its pools lazily)."""
    try:
        session = cast(Any, client)._endpoint.http_session
        pools: dict[str, Any] = session._pool_classes_by_scheme
        manager = session._manager
    except AttributeError as error:  # botocore changed: refuse rather than connect unchecked
        raise RuntimeError("cannot pin S3 connections to the checked addresses") from error
    pinned = {scheme: _pinned_pool(pool, addresses) for scheme, pool in pools.items()}
    session._pool_classes_by_scheme = pinned
    manager.pool_classes_by_scheme = pinned
    # A proxy would resolve the name again, out of our sight.
    from botocore.httpsession import ProxyConfiguration  # with the client: loaded by then

    session._proxy_config = ProxyConfiguration()


def _pinned_pool(pool: type[Any], addresses: tuple[str, ...]) -> type[Any]:
    base = pool.ConnectionCls

    class PinnedConnection(base):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> Any:
            # urllib3 connects to `_dns_host`; the Host header, SNI and the certificate check
            # use `host`, which reads the same attribute — so swap it only while connecting.
            this = cast(Any, self)
            name = this._dns_host
            failure: Exception | None = None
            try:
                for address in addresses:
                    this._dns_host = address
                    try:
                        return super()._new_conn()
                    except NewConnectionError as error:  # refused, unreachable: try the next
                        failure = error
            finally:
                this._dns_host = name
            assert failure is not None
            raise failure

    return type(f"Pinned{pool.__name__}", (pool,), {"ConnectionCls": PinnedConnection})


def open_storage(
    connection: StorageConnection,
    *,
    resolver: Resolver | None = None,
    interactive: bool = False,
) -> S3Storage:
    """An S3Storage for ``connection`` whose client may only reach checked addresses.
    ``interactive``: short timeouts and no retry, for a person waiting on a page."""
    config = config_of(connection)
    addresses = checked_addresses(connection.organization_id, config, resolver)
    storage = S3Storage(config)
    storage.client.close()
    if interactive:
        seconds = float(settings.S3_INTERACTIVE_TIMEOUT)
        storage.client = pinned_client(
            config, addresses, connect_timeout=seconds, read_timeout=seconds, attempts=1
        )
    else:
        storage.client = pinned_client(config, addresses)
    return storage


def storage_failure(
    error: BaseException, storage: S3Storage
) -> s3check.StorageProblem | StorageUnavailable:
    """A botocore error as the connection test's diagnosis: a `s3check.StorageProblem` when it
    is permanent (``PERMANENT``), else `StorageUnavailable`. A timeout names the seconds the
    storage's client really waited."""
    if not isinstance(error, BotoCoreError | ClientError):
        return StorageUnavailable(str(error))
    options: Any = storage.client.meta.config
    seconds = (
        options.read_timeout if isinstance(error, ReadTimeoutError) else options.connect_timeout
    )
    where = s3check._Where(_endpoint_of(storage.config), storage.config, _seconds(seconds))
    problem = s3check._diagnose(error, where, "list")
    return problem if problem.code in PERMANENT else StorageUnavailable(problem.message)


def _seconds(value: Any) -> float | int:
    number = float(value or 0)
    return int(number) if number.is_integer() else number


def _endpoint_of(config: S3Config) -> str:
    return config.endpoint_url or f"https://s3.{config.region}.amazonaws.com"


# ---------------------------------------------------------------------------- checking


def connection_problems(
    connection: StorageConnection,
    *,
    resolver: Resolver | None = None,
    timeout: float | None = None,
    secret_key: str | None = None,
) -> list[dict[str, str]]:
    """Everything wrong with the connection, in plain words: ``[{"code", "message"}]``, empty
    when it works. A refusal by the address policy comes first as code ``refused`` with the
    ``rule`` that refused (no request is sent then); otherwise the codes of
    ``s3check.StorageProblem``. The check lists, writes and deletes a probe object, each call
    waiting ``timeout`` seconds (default ``DEFECTLAB_S3_INTERACTIVE_TIMEOUT``), once."""
    timeout = float(timeout or settings.S3_INTERACTIVE_TIMEOUT)
    config = config_of(connection, secret_key=secret_key)
    try:
        addresses = checked_addresses(connection.organization_id, config, resolver)
    except Refused as refusal:
        return [{"code": "refused", "rule": refusal.rule, "message": refusal.message}]
    except FetchFailed as failure:
        code = "timeout" if (failure.details or {}).get("rule") == "timeout" else "dns"
        return [{"code": code, "message": failure.message}]
    client = pinned_client(
        config, addresses, connect_timeout=timeout, read_timeout=timeout, attempts=1
    )
    try:
        problems = s3check.problems_on(client, config, _seconds(timeout))
    finally:
        client.close()
    return [{"code": problem.code, "message": problem.message} for problem in problems]


# ---------------------------------------------------------------------------- references


def connection_of(organization_id: int, connection_id: int) -> StorageConnection:
    """The connection a ``storage://`` image names, in that organization."""
    connection = StorageConnection.objects.filter(
        pk=connection_id, organization_id=organization_id
    ).first()
    if connection is None:
        raise NotFound(
            _("The storage connection this image came from was removed."), code="storage_removed"
        )
    return connection


# Storages for reads on behalf of a person (media) or of an export, shared by threads: made
# pinned to the addresses checked when they were made, so reusing one never reaches an
# unchecked address; remade when the connection changes or after STORAGE_TTL seconds, which
# is how long a narrowed allowlist may take to apply to them.
STORAGE_TTL = 60.0
_shared: dict[tuple[int, bool], tuple[Any, float, S3Storage]] = {}
_shared_lock = threading.Lock()


def shared_storage(connection: StorageConnection, *, background: bool = False) -> S3Storage:
    """A checked, pinned storage for ``connection``, reused for a while (do not close it): with
    the short timeouts of a person waiting, or a job's (``background``, for exports). Raises
    Refused / FetchFailed like ``open_storage``."""
    now = time.monotonic()
    slot = (connection.pk, background)
    with _shared_lock:
        entry = _shared.get(slot)
        if entry and entry[0] == connection.updated_at and now - entry[1] < STORAGE_TTL:
            return entry[2]
    storage = open_storage(connection, interactive=not background)  # DNS: not under the lock
    with _shared_lock:
        stale = [_shared.pop(slot, None)]
        while len(_shared) >= 32:
            stale.append(_shared.pop(next(iter(_shared))))
        _shared[slot] = (connection.updated_at, now, storage)
    for old in stale:
        if old is not None:
            old[2].close()  # requests under way finish; their connections are not reused
    return storage


def clear_caches() -> None:
    """Close and forget every cached storage and signer (tests; after an allowlist change)."""
    with _shared_lock, _signers_lock:
        storages = [entry[2] for entry in _shared.values()] + list(_signers.values())
        _shared.clear()
        _signers.clear()
    breaker.forget()
    for storage in storages:
        storage.close()


def _forget_storages(connection_id: int) -> None:
    with _shared_lock:
        entries = [_shared.pop((connection_id, kind), None) for kind in (False, True)]
    breaker.forget(connection_id)  # new settings deserve a fresh try
    for entry in entries:
        if entry is not None:
            entry[2].close()


_signers: dict[tuple[int, Any], S3Storage] = {}
_signers_lock = threading.Lock()


def signer_for(connection: StorageConnection) -> S3Storage:
    """A storage for presigning only (local work, no request): cached per connection version."""
    version = (connection.pk, connection.updated_at)
    with _signers_lock:
        signer = _signers.get(version)
        if signer is None:
            for stale in [key for key in _signers if key[0] == connection.pk]:
                _signers.pop(stale).close()
            while len(_signers) >= 64:
                _signers.pop(next(iter(_signers))).close()
            signer = _signers[version] = S3Storage(config_of(connection))
        return signer


def _forget_signer(connection_id: int) -> None:
    with _signers_lock:
        for stale in [key for key in _signers if key[0] == connection_id]:
            _signers.pop(stale).close()


def targets_of(project_id: int) -> list[StorageConnection]:
    return list(
        StorageConnection.objects.filter(project_id=project_id, role=StorageRole.TARGET).order_by(
            "id"
        )
    )
