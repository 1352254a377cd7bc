"""Fixtures for the fetcher tests: HTTP(S) servers on loopback, a DNS table, and guards.

Two guards hold for every test in this package:
- every outgoing TCP connection is recorded, and one to anything but a loopback address fails
  the test before it is made (the refusal tests then assert that none was attempted at all);
- the system resolver is off limits: real DNS is outside our reach (and its answers outside our
  control), so names resolve through a ``FakeDNS`` table passed as the fetcher's ``resolver``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import png_bytes
from tests.loopback import Loopback, reply

PNG = png_bytes(32, 24)

# ---------------------------------------------------------------------------- guards


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every (address, port) a socket connected to during the test; loopback only."""
    made: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        host, port = address[0], address[1]
        if not ipaddress.ip_address(host).is_loopback:
            pytest.fail(f"a test tried to connect outside this machine: {address!r}")
        made.append((host, port))
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


@pytest.fixture(autouse=True)
def no_system_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(host: Any, *args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a test asked the system resolver for {host!r}; pass a FakeDNS instead")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


class FakeDNS:
    """A resolver answering from a table; a name not in it fails the test."""

    def __init__(self, table: dict[str, list[str] | BaseException] | None = None) -> None:
        self.table = table or {}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise AssertionError(f"unexpected DNS lookup of {host!r}")
        answer = self.table[host]
        if isinstance(answer, BaseException):
            raise answer
        return answer


# ---------------------------------------------------------------------------- servers

Route = Callable[[BaseHTTPRequestHandler, threading.Event], None]


def send(data: bytes = PNG, content_type: str | None = "image/png", status: int = 200) -> Route:
    def route(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        reply(handler, status, data, content_type)

    return route


def redirect(location: str, status: int = 302) -> Route:
    def route(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def chunked(total: int, content_type: str = "image/png") -> Route:
    """``total`` bytes without a Content-Length: the size is only known by reading."""

    def route(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        left = total
        while left > 0 and not stop.is_set():
            size = min(left, 4096)
            handler.wfile.write(b"%x\r\n" % size + b"x" * size + b"\r\n")
            left -= size
        handler.wfile.write(b"0\r\n\r\n")

    return route


def drip(total: int, every: float) -> Route:
    """A body of ``total`` bytes, one byte every ``every`` seconds: no single read ever waits
    long, so only a deadline for the whole fetch stops it."""

    def route(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        for _ in range(total):
            if stop.wait(every):
                return
            handler.wfile.write(b"x")
            handler.wfile.flush()

    return route


def stall(seconds: float) -> Route:
    """Accept the connection, then say nothing for ``seconds``."""

    def route(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        if not stop.wait(seconds):
            send()(handler, stop)

    return route


@dataclass
class Seen:
    path: str
    host: str | None
    user_agent: str | None


@dataclass
class LoopbackServer:
    """A threaded HTTP(S) server on a loopback address, answering from ``routes``."""

    address: str = "127.0.0.1"
    routes: dict[str, Route] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        assert ipaddress.ip_address(self.address).is_loopback
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.seen.append(
                    Seen(self.path, self.headers.get("Host"), self.headers.get("User-Agent"))
                )
                route = server.routes.get(self.path, send(b"no such route", "text/plain", 404))
                self.close_connection = True
                # The fetcher may hang up first, as it should in some tests.
                with contextlib.suppress(OSError):
                    route(self, server.stop)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = Loopback(Handler, self.address, self.tls)
        self.port = self._server.port

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host or self.address}:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self._server.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    """``serve(routes, address="127.0.0.1", tls=None)``: a server, closed after the test."""
    servers: list[LoopbackServer] = []

    def start(
        routes: dict[str, Route],
        address: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> LoopbackServer:
        server = LoopbackServer(address, routes, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# ---------------------------------------------------------------------------- a private CA


@dataclass
class PrivateCA:
    ca_file: Path
    issue: Callable[[Iterable[str]], ssl.SSLContext]  # names → a server context with that cert
    sni: list[str | None]


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    """A certificate authority of our own, so the https path runs for real on loopback."""
    folder = tmp_path_factory.mktemp("ca")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DefectLab test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    sni: list[str | None] = []

    def issue(names: Iterable[str]) -> ssl.SSLContext:
        names = list(names)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name) for name in names]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_file, key_file = folder / f"{names[0]}.crt", folder / f"{names[0]}.key"
        cert_file.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + ca_cert.public_bytes(serialization.Encoding.PEM)
        )
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        context.sni_callback = lambda _sock, name, _context: sni.append(name)
        return context

    return PrivateCA(ca_file, issue, sni)
