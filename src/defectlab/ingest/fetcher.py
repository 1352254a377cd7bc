"""The guarded URL fetcher: every outbound request to an address a user gave us goes through here
(URL imports, webhooks, S3 endpoints, external model backends).

Each hop of a redirect chain goes the same way:

1. ``policy.parse_url`` reads the URL strictly: http and https only, no ``user:pass@``, the host
   read as the C library would read it (``0x7f.1`` is 127.0.0.1).
2. A host name is resolved once, through ``resolver`` (``getaddrinfo`` by default, run in a helper
   thread so that the deadline bounds DNS too).
3. Every resolved address is checked against the policy and the organization's allowlist; one
   refused address refuses the whole name (a name resolving to a public and a private address is
   refused).
4. We open the TCP socket ourselves, to a checked address, and hand the connected socket to
   ``http.client``. Nothing below this point resolves a name again, so a DNS answer that changes
   between check and connect (DNS rebinding) cannot reach an unchecked address. For https the
   socket is wrapped with ``server_hostname`` set to the URL's host: that sends SNI and verifies
   the certificate against the name (system CAs, unless the caller passes ``ssl_context``).
   The Host header names the URL's host too, so virtual hosts answer as they would to a browser.

   Why ``http.client`` with a socket of our own rather than urllib3's pools with
   ``server_hostname``/``assert_hostname``: the one place an address is chosen is then ten lines
   in this file, and there is no retry, redirect, proxy or pooling logic underneath to switch
   off. Proxy variables (``HTTP_PROXY``…) are ignored on purpose: a proxy resolves names again.
5. Redirects (301, 302, 303, 307, 308) are followed here, at most ``MAX_REDIRECTS``, each new URL
   parsed and checked from step 1.
6. Caps: one deadline for the whole fetch (DNS, connect, TLS, every redirect, every read — each
   socket operation may only wait for what is left of it, so a server dripping one byte a second
   cannot stretch it), the body size (reading stops at ``max_bytes + 1`` bytes), and the content
   type.

Errors: ``Refused`` when the policy says no (retrying will not help), ``FetchFailed`` when DNS,
the connection, TLS, time or the server's HTTP status failed (retrying may help). Both carry
``details = {"url", "address", "rule"}``.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.template.defaultfilters import filesizeformat

from defectlab import __version__
from defectlab.ingest.allowlist import NO_ALLOWLIST, Allowlist, check_address
from defectlab.ingest.policy import (
    FetchFailed,
    IPAddress,
    Refused,
    Target,
    is_localhost_name,
    parse_url,
    unwrap_mapped,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "NO_ALLOWLIST",
    "Allowlist",
    "Checked",
    "FetchFailed",
    "FetchStream",
    "Fetched",
    "Posted",
    "Refused",
    "Resolver",
    "check_url",
    "fetch",
    "post",
    "stream",
    "system_resolver",
]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_SIZE = 64 * 1024
USER_AGENT = f"DefectLab/{__version__} (+url-fetcher)"

Resolver = Callable[[str, int], Iterable[str]]
"""``resolver(host, port)`` → the addresses of ``host`` as text, like ``getaddrinfo`` gives them."""


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` finds for ``host``, in its order, each once."""
    found: list[str] = []
    for family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in found:
            found.append(str(sockaddr[0]))
    return found


# ---------------------------------------------------------------------------- time


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; TimeoutError once there are none."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


class _DeadlineSocket:
    """The part of a socket ``http.client`` uses, each operation limited to the time left.

    The real socket stays ours: ``close()`` here does nothing (``http.client`` calls it while the
    response is still being read); ``stream()`` closes the socket when it is done."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: ReadableBuffer) -> None:
        self._sock.settimeout(self._deadline.remaining())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        pass


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._sock.settimeout(self._deadline.remaining())
        return self._sock.recv_into(buffer)


# ---------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Checked:
    """A URL that passed the policy, with the addresses it may be fetched from."""

    target: Target
    addresses: tuple[IPAddress, ...]


def check_url(
    url: str,
    *,
    allowlist: Allowlist,
    resolver: Resolver | None = None,
    timeout: float | None = None,
) -> Checked:
    """Parse, resolve and check ``url`` without connecting: Refused, FetchFailed (DNS) or the
    addresses. For a quick answer before queueing work; ``fetch`` checks again every time."""
    deadline = _Deadline(timeout if timeout is not None else settings.FETCH_TIMEOUT)
    target = parse_url(url)
    return Checked(target, _checked_addresses(target, allowlist, resolver, deadline))


def _checked_addresses(
    target: Target, allowlist: Allowlist, resolver: Resolver | None, deadline: _Deadline
) -> tuple[IPAddress, ...]:
    if target.ip is not None:
        addresses: Sequence[IPAddress] = [target.ip]
        host = None
    else:
        host = target.host
        if is_localhost_name(host) and not allowlist.opens_host(host):
            # Judged without asking DNS: whatever it answers, this name means this machine
            # (only the operator can open it, by this exact name).
            raise Refused("loopback", target.given, host)
        addresses = _resolve(target, resolver or system_resolver, deadline)
    for ip in addresses:
        check_address(ip, url=target.given, allowlist=allowlist, host=host)
    return tuple(addresses)


def _resolve(target: Target, resolver: Resolver, deadline: _Deadline) -> list[IPAddress]:
    """The host's addresses, asked for once, within the deadline (``getaddrinfo`` has no timeout
    of its own, so it runs in a helper thread that is left behind if it overstays)."""
    answer: list[str] = []
    problem: list[BaseException] = []

    def ask() -> None:
        try:
            answer.extend(resolver(target.host, target.port))
        except BaseException as error:  # handed to the caller's thread below
            problem.append(error)

    helper = threading.Thread(target=ask, name="defectlab-resolve", daemon=True)
    helper.start()
    helper.join(max(deadline.at - time.monotonic(), 0))
    if helper.is_alive():
        raise FetchFailed("timeout", target.given, seconds=_seconds(deadline))
    if problem:
        if isinstance(problem[0], OSError | UnicodeError):
            raise FetchFailed("dns", target.given, host=target.host)
        raise problem[0]
    addresses: list[IPAddress] = []
    for text in answer:
        try:
            ip = unwrap_mapped(ipaddress.ip_address(text))
        except ValueError:
            raise FetchFailed("dns", target.given, host=target.host) from None
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise FetchFailed("dns", target.given, host=target.host)
    return addresses


def _seconds(deadline: _Deadline) -> str:
    return f"{deadline.seconds:g}"


# ---------------------------------------------------------------------------- fetching


@dataclass(frozen=True)
class Fetched:
    url: str  # as asked for
    final_url: str  # after redirects, canonical
    status: int
    content_type: str  # the media type, lower case, without parameters
    body: bytes
    address: str  # the address the body came from


class FetchStream:
    """An open response: its metadata, and its body as chunks when iterated (once)."""

    def __init__(
        self,
        *,
        url: str,
        final_url: str,
        status: int,
        content_type: str,
        address: str,
        shown_url: str,
        response: http.client.HTTPResponse,
        max_bytes: int,
        deadline: _Deadline,
    ) -> None:
        self.url = url
        self.final_url = final_url
        self.status = status
        self.content_type = content_type
        self.address = address
        self.content_length: int | None = response.length
        self._shown_url = shown_url
        self._response = response
        self._max_bytes = max_bytes
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        while True:
            # One byte past the cap is enough to know the body is too large.
            wanted = min(CHUNK_SIZE, self._max_bytes + 1 - received)
            with _failures(self._shown_url, self.address, self._deadline):
                chunk = self._response.read1(wanted)
            if not chunk:
                break
            received += len(chunk)
            if received > self._max_bytes:
                raise _refused("too_large", self._shown_url, self.address, self._max_bytes)
            yield chunk
        if self._response.length:  # the server closed before sending all it announced
            raise FetchFailed("protocol", self._shown_url, self.address)


@contextmanager
def stream(
    url: str,
    *,
    allowlist: Allowlist,
    max_bytes: int | None = None,
    timeout: float | None = None,
    content_types: Sequence[str] = ("image/",),
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    first_bytes: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Iterator[FetchStream]:
    """Open ``url`` under the policy and yield the response to read in chunks (for proxying).

    ``max_bytes`` defaults to the upload limit, ``timeout`` (seconds, for everything together) to
    ``DEFECTLAB_FETCH_TIMEOUT``. ``content_types``: accepted media types; one ending in ``/``
    accepts the whole family; empty accepts anything. ``ssl_context``: for a private CA.
    ``first_bytes``: ask for only that many bytes from the start (an HTTP Range request); a
    server may answer with the whole body anyway, so the caller stops reading when it has them.
    ``headers``: more request headers (an ``Authorization`` a model backend wants, say)."""
    limit = max_bytes if max_bytes is not None else settings.MAX_UPLOAD_MB * 1024 * 1024
    deadline = _Deadline(timeout if timeout is not None else settings.FETCH_TIMEOUT)
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        target, sock, address = _open(current, allowlist, resolver, deadline, ssl_context, "fetch")
        try:
            with _failures(target.given, address, deadline):
                # The caller's headers (a secret, often) go only where the caller sent them:
                # a redirect to another origin gets none.
                own = headers if headers and _origin(current) == _origin(url) else {}
                sent = {"Accept": _accept_header(content_types), **own}
                if first_bytes is not None:
                    sent["Range"] = f"bytes=0-{max(first_bytes, 1) - 1}"
                response = _request(sock, target, deadline, "GET", sent)
            location = response.getheader("Location")
            if response.status in REDIRECT_STATUSES and location:
                current = urljoin(target.url, location.strip())
                continue
            if not 200 <= response.status < 300:
                raise FetchFailed("http_status", target.given, address, status=response.status)
            content_type = _media_type(response.getheader("Content-Type", ""))
            if not _accepts(content_types, content_type):
                raise Refused("content_type", target.given, address, content_type=content_type)
            if response.length is not None and response.length > limit:
                raise _refused("too_large", target.given, address, limit)
            yield FetchStream(
                url=url,
                final_url=target.url,
                status=response.status,
                content_type=content_type,
                address=address,
                shown_url=target.given,
                response=response,
                max_bytes=limit,
                deadline=deadline,
            )
            return
        finally:
            sock.close()
    raise Refused("redirect_limit", url, limit=MAX_REDIRECTS)


def fetch(
    url: str,
    *,
    allowlist: Allowlist,
    max_bytes: int | None = None,
    timeout: float | None = None,
    content_types: Sequence[str] = ("image/",),
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """The body at ``url``, fetched under the policy (see ``stream`` for the arguments)."""
    with stream(
        url,
        allowlist=allowlist,
        max_bytes=max_bytes,
        timeout=timeout,
        content_types=content_types,
        resolver=resolver,
        ssl_context=ssl_context,
        headers=headers,
    ) as response:
        body = b"".join(response)
        return Fetched(
            url=url,
            final_url=response.final_url,
            status=response.status,
            content_type=response.content_type,
            body=body,
            address=response.address,
        )


@dataclass(frozen=True)
class Posted:
    url: str
    status: int  # whatever the server answered, 3xx and errors included
    body: bytes  # the start of the answer (at most ``max_bytes``), for a log
    address: str  # the address that answered


def post(
    url: str,
    body: bytes,
    *,
    allowlist: Allowlist,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
    timeout: float | None = None,
    max_bytes: int = 4096,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Posted:
    """POST ``body`` to ``url`` under the same policy as ``fetch`` (webhooks), and answer the
    server's status whatever it is: the caller decides what counts as delivered.

    A redirect is not followed: the body is not sent on to an address the owner of the URL did
    not give, and the answer (a 3xx) is reported as it is. Refused and FetchFailed as ``fetch``
    raises them, for what happens before an answer (the policy, DNS, connecting, TLS, time)."""
    deadline = _Deadline(timeout if timeout is not None else settings.FETCH_TIMEOUT)
    target, sock, address = _open(url, allowlist, resolver, deadline, ssl_context, "post")
    try:
        with _failures(target.given, address, deadline):
            sent = {
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
                **(headers or {}),
            }
            response = _request(sock, target, deadline, "POST", sent, body)
            answer = response.read(max_bytes)
        return Posted(url=url, status=response.status, body=answer, address=address)
    finally:
        sock.close()


def _connect(
    target: Target,
    addresses: Sequence[IPAddress],
    deadline: _Deadline,
    ssl_context: ssl.SSLContext | None,
) -> tuple[socket.socket, str]:
    """A socket connected to the first checked address that answers (TLS done for https)."""
    for ip in addresses:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            with _failures(target.given, str(ip), deadline):
                try:
                    sock.settimeout(deadline.remaining())
                    sock.connect((str(ip), target.port))
                except TimeoutError:
                    raise  # the deadline passed while connecting
                except OSError:
                    sock.close()
                    continue  # refused or unreachable: try the next address
                if target.scheme == "https":
                    context = ssl_context or _default_ssl_context()
                    sock.settimeout(deadline.remaining())
                    # server_hostname: SNI, and the name the certificate must be valid for.
                    sock = context.wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
        return sock, str(ip)
    raise FetchFailed("connect", target.given, ", ".join(str(ip) for ip in addresses))


def _open(
    url: str,
    allowlist: Allowlist,
    resolver: Resolver | None,
    deadline: _Deadline,
    ssl_context: ssl.SSLContext | None,
    verb: str,
) -> tuple[Target, socket.socket, str]:
    """``url`` parsed, its addresses checked under the policy (a refusal logged as "<verb>
    refused" and raised) and a socket connected to the first that answers."""
    try:
        target = parse_url(url)
        addresses = _checked_addresses(target, allowlist, resolver, deadline)
    except Refused as refusal:
        log.warning(
            f"{verb} refused",
            extra={"url": refusal.url, "address": refusal.address, "rule": refusal.rule},
        )
        raise
    sock, address = _connect(target, addresses, deadline, ssl_context)
    return target, sock, address


def _request(
    sock: socket.socket,
    target: Target,
    deadline: _Deadline,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
) -> http.client.HTTPResponse:
    # http.client only formats the request and parses the answer: the socket is already
    # connected (to the checked address), so it never connects or resolves anything itself.
    connection = http.client.HTTPConnection(target.host, target.port)
    connection.sock = _DeadlineSocket(sock, deadline)
    connection.putrequest(method, target.request_target, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", target.host_header)
    connection.putheader("User-Agent", USER_AGENT)
    connection.putheader("Accept-Encoding", "identity")
    connection.putheader("Connection", "close")
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders(body)
    return connection.getresponse()


@contextmanager
def _failures(url: str, address: str, deadline: _Deadline) -> Iterator[None]:
    """Network errors as FetchFailed naming what failed."""
    try:
        yield
    except TimeoutError:
        raise FetchFailed("timeout", url, address, seconds=_seconds(deadline)) from None
    except ssl.SSLError as error:
        reason = getattr(error, "verify_message", None) or getattr(error, "reason", None)
        raise FetchFailed("tls", url, address, error=reason or str(error)) from None
    except (http.client.HTTPException, ValueError):
        raise FetchFailed("protocol", url, address) from None
    except OSError:
        raise FetchFailed("connect", url, address) from None


@cache
def _default_ssl_context() -> ssl.SSLContext:
    # Certificates checked against the system's CAs and the host name; TLS 1.2 at least.
    return ssl.create_default_context()


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(address: str) -> tuple[str, str, int | None]:
    parts = urlsplit(address)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _accepts(content_types: Sequence[str], media_type: str) -> bool:
    if not content_types:
        return True
    return any(
        media_type.startswith(accepted) if accepted.endswith("/") else media_type == accepted
        for accepted in content_types
    )


def _accept_header(content_types: Sequence[str]) -> str:
    if not content_types:
        return "*/*"
    return ", ".join(kind + "*" if kind.endswith("/") else kind for kind in content_types)


def _refused(rule: str, url: str, address: str, limit: int) -> Refused:
    return Refused(rule, url, address, limit=filesizeformat(limit), max_bytes=limit)
