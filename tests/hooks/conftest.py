"""A webhook receiver on loopback (http.server in a thread) and a way to run queued jobs here.

Every outgoing TCP connection is recorded, and one to anything but a loopback address fails the
test before it is made (so the refusal tests can assert that nothing was attempted at all)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from defectlab.hooks.delivery import sign
from tests.conftest import png_bytes
from tests.loopback import Loopback, reply

PNG = png_bytes(32, 24)


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    made: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if not ipaddress.ip_address(address[0]).is_loopback:
            pytest.fail(f"a test tried to connect outside this machine: {address!r}")
        made.append((address[0], address[1]))
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def valid_for(self, secret: str) -> bool:
        expected = sign(secret, self.headers["X-DefectLab-Timestamp"], self.body)
        return self.headers["X-DefectLab-Signature"] == expected


@dataclass
class Receiver:
    """Answers each POST with the next status of ``answers`` (then 200 for ever); serves PNG
    for GET (a source for URL imports)."""

    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                reply(self, status, b"nope" if status >= 300 else b"ok", "text/plain")

            def do_GET(self) -> None:
                reply(self, 200, PNG, "image/png")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = Loopback(Handler)
        self.port = self._server.port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self) -> list[str]:
        return [seen.headers["X-DefectLab-Event"] for seen in self.received]

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def loopback_open(settings: Any) -> None:
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the operator opens loopback
