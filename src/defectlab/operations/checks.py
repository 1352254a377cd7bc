"""`defectlab check` and `defectlab check --deploy`: what is wrong with an installation, each
problem in a sentence that says what to fix.

`problems` is the plain check (the settings parse, the database answers and is migrated, the
data directory is writable, DEBUG is off). `deploy_findings` adds what a production deployment
needs: the broker, Redis, the storage and every organization's storage connection reachable;
a secret key that is set and strong; public addresses that agree with the CSRF origins, the
allowed hosts and the S3 public endpoints; sensible HTTPS settings. A finding is a problem
(the command exits 1) or a warning (said, exit 0)."""

from __future__ import annotations

import math
import os
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection

from defectlab.operations.backup import PROBE  # the probe's key: backups and restores pass it by

TIMEOUT = 3.0  # seconds each reachability check may take
MIN_KEY_LENGTH = 20
MIN_KEY_BITS = 128  # the key's length times the bits of the character classes it draws from
# A key with this share or more of its characters in runs ("aaaa", "abcd", "qwer"), repeats
# of itself or common words is not random whatever its classes promise.
MAX_PATTERNED_SHARE = 0.5  # a random key reaches a third about once in 10^4
RUNS = ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./", string.ascii_lowercase)
WORDS = ("password", "passwd", "secret", "django", "admin", "qwerty", "letmein", "welcome")
PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "insecure",
    "example",
    "secret-key",
    "test-only",
)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass(frozen=True)
class Finding:
    message: str
    fatal: bool = True


def problems() -> list[str]:
    """What the plain `defectlab check` reports."""
    from django.db.migrations.executor import MigrationExecutor

    found = list(settings.PROBLEMS)
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            found.append(
                f"The database needs {len(pending)} migration(s): run `defectlab migrate`."
            )
    except Exception as error:  # any driver error means the same thing to the reader
        found.append(
            f"Cannot reach the database ({settings.DATABASES['default']['ENGINE']}): {error}"
        )
    if not os.access(settings.DATA_DIR, os.W_OK):
        found.append(f"The data directory {settings.DATA_DIR} is not writable.")
    if settings.DEBUG:
        found.append("DEFECTLAB_DEBUG is on: never run like this in production.")
    return found


def deploy_findings() -> list[Finding]:
    checks: list[Callable[[], list[Finding]]] = [
        broker_findings,
        redis_findings,
        storage_findings,
        connection_findings,
        secret_key_findings,
        metrics_token_findings,
        public_url_findings,
        s3_endpoint_findings,
        https_findings,
    ]
    return [finding for check in checks for finding in check()]


def broker_findings() -> list[Finding]:
    url = settings.BROKER_URL
    scheme = urlsplit(url).scheme
    if scheme in ("amqp", "amqps"):
        import pika

        parameters = pika.URLParameters(url)
        parameters.socket_timeout = parameters.blocked_connection_timeout = TIMEOUT
        parameters.connection_attempts = 1
        try:
            pika.BlockingConnection(parameters).close()
        except Exception as error:  # pika's errors have no common base worth naming
            return [
                Finding(
                    f"Cannot reach the RabbitMQ broker at {_where(url)} "
                    f"(DEFECTLAB_BROKER_URL): {type(error).__name__} {error}. Check the host, "
                    "port, user, password and virtual host, and that RabbitMQ runs."
                )
            ]
        return []
    path = urlsplit(url).path if scheme == "sqlite" else str(settings.DATA_DIR / "queue.sqlite3")
    folder = os.path.dirname(path) or "."
    if not os.access(folder, os.W_OK):
        return [Finding(f"The embedded job queue's folder {folder} is not writable.")]
    return [
        Finding(
            "Jobs use the embedded queue (a SQLite file): fine on one machine; with workers on "
            "several machines set DEFECTLAB_BROKER_URL to a RabbitMQ (amqp://…).",
            fatal=False,
        )
    ]


def redis_findings() -> list[Finding]:
    url = settings.REDIS_URL
    if not url:
        return []
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        client.ping()
        client.close()
    except redis.RedisError as error:
        return [
            Finding(
                f"Cannot reach Redis at {_where(url)} (DEFECTLAB_REDIS_URL): {error}. Check the "
                "address and password, or leave it empty to count quotas per process."
            )
        ]
    return []


def storage_findings() -> list[Finding]:
    """Write, read back and delete a probe file in the installation's own storage."""
    from defectlab.media.storage import LocalStorage, default_storage

    storage = default_storage()
    # Inside a folder of the prefix, so that what the storage writes on the way (a local
    # storage's temporary file) is under it too: a check killed halfway leaves nothing
    # `restore` takes for data.
    folder = f"{PROBE}{uuid.uuid4().hex}"
    key = f"{folder}/probe"
    data = b"defectlab check --deploy"
    try:
        storage.save(key, data)
        try:
            if storage.read(key) != data:
                return [Finding(f"The storage gave back other bytes than it was given ({key}).")]
        finally:
            storage.delete(key)
            if isinstance(storage, LocalStorage):
                storage.root.joinpath(folder).rmdir()
    except Exception as error:
        return [
            Finding(
                f"Cannot write, read and delete a file in the storage ({settings.STORAGE_DIR}): "
                f"{error}. Give the user DefectLab runs as write access there."
            )
        ]
    return []


def connection_findings() -> list[Finding]:
    """Every organization's S3 storage connection, tested as its page tests it (warnings: an
    organization's bucket is theirs to fix, but the operator should know)."""
    from defectlab.media.connections import connection_problems
    from defectlab.media.models import StorageConnection

    found = []
    try:
        connections = list(StorageConnection.objects.select_related("organization"))
    except Exception:
        return []  # the database is not reachable: `problems` says so
    for storage in connections:
        for problem in connection_problems(storage, timeout=TIMEOUT):
            found.append(
                Finding(
                    f"Storage “{storage.name}” of {storage.organization.name} "
                    f"({storage.endpoint_url or 'AWS'}, bucket {storage.bucket}): "
                    f"{problem['message']}",
                    fatal=False,
                )
            )
    return found


def key_bits(key: str) -> float:
    """The key's length times the bits of a character drawn from the classes it uses (hex: 4;
    lower + upper + digits: 5.95; with punctuation: 6.6): what a random key of that shape holds.
    `patterned` tells a key that only looks like one."""
    if not key:
        return 0.0
    if set(key) <= set(string.digits + "abcdef") or set(key) <= set(string.digits + "ABCDEF"):
        return 4.0 * len(key)
    classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
    size = sum(len(chars) for chars in classes if any(c in chars for c in key))
    size += 33 if any(not any(c in chars for chars in classes) for c in key) else 0
    return math.log2(size) * len(key) if size > 1 else 0.0


def _step(a: str, b: str) -> bool:
    """``b`` is what a person types after ``a`` without thinking: the same, the next or the
    previous character, or its neighbour on a keyboard row."""
    a, b = a.lower(), b.lower()
    if a == b or (a.isalnum() and b.isalnum() and abs(ord(a) - ord(b)) == 1):
        return True
    return any(a in row and b in row and abs(row.index(a) - row.index(b)) == 1 for row in RUNS)


def patterned(key: str) -> int:
    """How many of the key's characters are in a run of four or more typed in a row, a repeat of
    four characters seen before, or a common word."""
    marked: set[int] = set()
    for i in range(3, len(key)):
        if all(_step(key[j - 1], key[j]) for j in (i - 2, i - 1, i)):
            marked.update(range(i - 3, i + 1))
    for i in range(1, len(key) - 3):
        if key.find(key[i : i + 4]) < i:
            marked.update(range(i, i + 4))
    lowered = key.lower()
    for word in WORDS:
        start = lowered.find(word)
        while start >= 0:
            marked.update(range(start, start + len(word)))
            start = lowered.find(word, start + 1)
    return len(marked)


def secret_key_findings() -> list[Finding]:
    given: str = settings.SECRET_KEY_SETTING
    if not given:
        found = [
            Finding(
                "DEFECTLAB_SECRET_KEY is not set: a key was generated into "
                f"{settings.DATA_DIR / 'secret_key'}, which only processes sharing that "
                "directory see. Set DEFECTLAB_SECRET_KEY, the same for web, worker and inference, "
                "to a long random value: python -c 'import secrets; print(secrets.token_urlsafe(50))'."
            )
        ]
    else:
        found = [Finding(problem) for problem in _key_problems("DEFECTLAB_SECRET_KEY", given)]
    return found + fallback_findings()


def fallback_findings() -> list[Finding]:
    """Each of DEFECTLAB_SECRET_KEY_FALLBACKS still signs sessions and media URLs that are
    accepted: judged like the key. One equal to the key does nothing (a rotation half done)."""
    found = []
    fallbacks: list[str] = list(getattr(settings, "SECRET_KEY_FALLBACKS", []))
    for number, key in enumerate(fallbacks, start=1):
        name = f"DEFECTLAB_SECRET_KEY_FALLBACKS (key {number} of {len(fallbacks)})"
        if key == settings.SECRET_KEY:
            found.append(
                Finding(
                    f"{name} is the same as DEFECTLAB_SECRET_KEY: it does nothing. To rotate the "
                    "key, set DEFECTLAB_SECRET_KEY to a new value and keep the old one here "
                    "(docs/operations.md, “Rotating the secret key”).",
                    fatal=False,
                )
            )
        elif fallbacks.index(key) < number - 1:
            found.append(Finding(f"{name} is given twice: list each old key once.", fatal=False))
        else:
            found.extend(Finding(problem) for problem in _key_problems(name, key))
    if fallbacks:
        found.append(
            Finding(
                f"DEFECTLAB_SECRET_KEY_FALLBACKS holds {len(fallbacks)} old key(s), which still "
                "sign sessions and media URLs that are accepted. Once everyone has signed in "
                "again and `defectlab rotate-secrets` has run, remove them.",
                fatal=False,
            )
        )
    return found


def _key_problems(name: str, key: str) -> list[str]:
    """What is wrong with ``key``, read from the setting ``name`` (the key or a fallback)."""
    if name == "DEFECTLAB_SECRET_KEY":
        placeholder_fix = "replace it with a long random value (secrets.token_urlsafe(50))."
        weak_fix = (
            f"use at least {MIN_KEY_BITS} random bits, e.g. secrets.token_urlsafe(50) or "
            "`openssl rand -hex 32`. Changing it signs everyone out unless the old key is kept "
            "in DEFECTLAB_SECRET_KEY_FALLBACKS for a while (docs/operations.md, “Rotating the "
            "secret key”)."
        )
    else:
        placeholder_fix = weak_fix = (
            "whoever knows it can make password-reset links and media URLs that are accepted. "
            "Run `defectlab rotate-secrets`, then remove it."
        )
    if any(word in key.lower() for word in PLACEHOLDERS):
        return [f"{name} is a placeholder or development key: {placeholder_fix}"]
    bits = key_bits(key)
    if patterned(key) >= len(key) * MAX_PATTERNED_SHARE:
        bits = min(bits, (len(key) - patterned(key)) * 4.0)  # its random part, at best
    if len(key) < MIN_KEY_LENGTH or bits < MIN_KEY_BITS:
        return [f"{name} is too weak ({len(key)} characters, about {bits:.0f} bits): {weak_fix}"]
    return []


def metrics_token_findings() -> list[Finding]:
    """The worker's probe server answers /metrics to anyone who reaches it unless a token is
    set: fine on loopback, worth a word on any other address."""
    host = str(settings.WORKER_METRICS_HOST)
    if settings.METRICS_TOKEN or not settings.WORKER_METRICS_PORT or host in LOOPBACK:
        return []
    return [
        Finding(
            f"DEFECTLAB_METRICS_TOKEN is empty and the worker's probe server listens on {host} "
            f"(DEFECTLAB_WORKER_METRICS_HOST): anyone who reaches port "
            f"{settings.WORKER_METRICS_PORT} reads its metrics. Set a token (Prometheus sends it "
            "as a bearer token) or keep that port inside a closed network.",
            fatal=False,
        )
    ]


def public_url_findings() -> list[Finding]:
    urls: list[str] = settings.PUBLIC_URLS
    found = []
    good = [urlsplit(url) for url in urls if urlsplit(url).hostname]
    if all((parts.hostname or "") in LOOPBACK for parts in good):
        found.append(
            Finding(
                f"DEFECTLAB_PUBLIC_URLS names only this machine ({', '.join(urls)}): set it to "
                "every address people reach DefectLab at, e.g. "
                "https://defects.example.com,http://10.1.2.3:8080 — browsers at other addresses "
                "are refused (allowed hosts) and their forms fail the CSRF check."
            )
        )
    for parts in good:
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.path.strip("/") or parts.query or parts.fragment:
            found.append(
                Finding(
                    f"DEFECTLAB_PUBLIC_URLS entry {parts.geturl()} has a path: give only "
                    f"scheme://host[:port] ({origin}); browsers send that as the origin, and "
                    "forms from it fail the CSRF check otherwise."
                )
            )
        elif origin not in settings.CSRF_TRUSTED_ORIGINS:
            found.append(Finding(f"{origin} is a public URL but not a CSRF trusted origin."))
        if parts.hostname not in settings.ALLOWED_HOSTS:
            found.append(Finding(f"{parts.hostname} is a public URL's host but not allowed."))
    return found


def s3_endpoint_findings() -> list[Finding]:
    mapping: dict[str, str] = settings.S3_PUBLIC_ENDPOINTS
    found = []
    public = {urlsplit(url).netloc.lower(): urlsplit(url) for url in settings.PUBLIC_URLS}
    hosts = {(parts.hostname or "").lower(): parts for parts in public.values()}
    for app_host, endpoint in mapping.items():
        parts = public.get(app_host) or hosts.get(app_host)
        if parts is None:
            found.append(
                Finding(
                    f"DEFECTLAB_S3_PUBLIC_ENDPOINTS maps {app_host}, which is not an address in "
                    "DEFECTLAB_PUBLIC_URLS: add it there (browsers cannot reach the app at it "
                    "otherwise), or fix the host (with its port when not the default)."
                )
            )
        elif parts.scheme == "https" and urlsplit(endpoint).scheme == "http":
            found.append(
                Finding(
                    f"DEFECTLAB_S3_PUBLIC_ENDPOINTS maps the https address {app_host} to "
                    f"{endpoint}: browsers block http images on https pages. Serve the storage "
                    "over https for it."
                )
            )
    return found


def https_findings() -> list[Finding]:
    schemes = {urlsplit(url).scheme for url in settings.PUBLIC_URLS}
    if "https" not in schemes:
        return [
            Finding(
                "No public URL uses https: passwords and sessions cross the network in the "
                "clear. Fine only on a closed network; put a TLS proxy in front otherwise.",
                fatal=False,
            )
        ]
    found = []
    if not settings.PROXY_HEADERS:
        found.append(
            Finding(
                "A public URL uses https but DEFECTLAB_PROXY_HEADERS is off: when a reverse "
                "proxy ends TLS, turn it on, or DefectLab takes every request for http (cookies "
                "not marked Secure, no HSTS).",
                fatal=False,
            )
        )
    if not settings.HSTS_SECONDS:
        found.append(
            Finding(
                "DEFECTLAB_HSTS_SECONDS is 0: browsers may be talked into plain http for this "
                "host; set it (31536000, a year) once https works.",
                fatal=False,
            )
        )
    return found


def _where(url: str) -> str:
    """``url`` without its password, for a message."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"


def findings_for(deploy: bool) -> tuple[list[str], list[str]]:
    """(problems, warnings) as the command prints them."""
    found: list[Any] = [Finding(problem) for problem in problems()]
    if deploy:
        found += deploy_findings()
    return (
        [finding.message for finding in found if finding.fatal],
        [finding.message for finding in found if not finding.fatal],
    )
