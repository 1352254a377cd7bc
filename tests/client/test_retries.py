"""Retries, against a stub: a loopback HTTP server of this test's own that answers each request
with the next scripted answer (a 429 or 503 with or without Retry-After, a dropped connection, a
success) and records what it was sent. It stands in for a DefectLab server that is throttling or
briefly unavailable, which a live one cannot be made to be on cue. The client's ``sleep`` is
recorded instead of slept, so the waits it chose are checked, not timed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from defectlab.client import ApiError, Client
from tests.loopback import Loopback

DROP = "drop"  # close the connection without answering


class Stub:
    def __init__(self) -> None:
        self.script: list[Any] = []
        self.seen: list[tuple[str, str, bytes]] = []
        self.authorization: list[str | None] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stub.seen.append((self.command, self.path, self.rfile.read(length)))
                stub.authorization.append(self.headers.get("Authorization"))
                step = stub.script.pop(0)
                if step == DROP:
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, body = step
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = Loopback(Handler)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.server.close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    yield server
    server.stop()


def throttled(status: int = 429, **headers: str) -> tuple[int, dict[str, str], Any]:
    code = "throttled" if status == 429 else "unavailable"
    return status, headers, {"error": {"code": code, "message": "Slow down."}}


ORGS = (200, {}, [{"id": 1, "name": "Acme", "role": "owner"}])


def client_for(stub: Stub, waits: list[float], **options: Any) -> Client:
    return Client(stub.url, "dl_test", sleep=waits.append, **options)


def test_429_and_503_are_sent_again_after_the_retry_after_asked(stub: Stub) -> None:
    stub.script = [
        throttled(503, **{"Retry-After": "2"}),
        throttled(429, **{"Retry-After": "1"}),
        ORGS,
    ]
    waits: list[float] = []
    with client_for(stub, waits) as client:
        (organization,) = client.organizations.list()
    assert organization.name == "Acme"
    assert waits == [2.0, 1.0]
    assert [(method, path) for method, path, _ in stub.seen] == [("GET", "/api/organizations/")] * 3
    assert stub.authorization == ["Bearer dl_test"] * 3


def test_retry_after_as_an_http_date(stub: Stub) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    stub.script = [throttled(503, **{"Retry-After": format_datetime(when, usegmt=True)}), ORGS]
    waits: list[float] = []
    with client_for(stub, waits) as client:
        client.organizations.list()
    (wait,) = waits
    assert 20 < wait <= 30


def test_without_retry_after_the_client_backs_off_a_little(stub: Stub) -> None:
    stub.script = [throttled(429), ORGS]
    waits: list[float] = []
    with client_for(stub, waits) as client:
        client.organizations.list()
    (wait,) = waits
    assert 0 < wait <= 0.5


def test_a_wait_longer_than_allowed_is_not_waited_for(stub: Stub) -> None:
    stub.script = [throttled(429, **{"Retry-After": "3600"})]
    waits: list[float] = []
    with client_for(stub, waits, max_retry_wait=60) as client, pytest.raises(ApiError) as error:
        client.organizations.list()
    assert waits == [] and len(stub.seen) == 1
    assert (error.value.status, error.value.code, error.value.retry_after) == (
        429,
        "throttled",
        3600,
    )
    assert error.value.message == "Slow down."


def test_retries_are_bounded(stub: Stub) -> None:
    stub.script = [throttled(503, **{"Retry-After": "0"})] * 3
    waits: list[float] = []
    with client_for(stub, waits, retries=2) as client, pytest.raises(ApiError) as error:
        client.projects.list()
    assert len(stub.seen) == 3 and waits == [0.0, 0.0]
    assert (error.value.status, error.value.code) == (503, "unavailable")


def test_other_errors_are_not_retried(stub: Stub) -> None:
    stub.script = [(500, {}, {"error": {"code": "server_error", "message": "Boom."}})]
    waits: list[float] = []
    with client_for(stub, waits) as client, pytest.raises(ApiError) as error:
        client.projects.list()
    assert len(stub.seen) == 1 and waits == []
    assert (error.value.status, error.value.code, error.value.message) == (
        500,
        "server_error",
        "Boom.",
    )


def test_a_dropped_connection_is_retried_for_a_get_but_not_for_a_post(stub: Stub) -> None:
    stub.script = [DROP, ORGS]
    waits: list[float] = []
    with client_for(stub, waits) as client:
        assert client.organizations.list()[0].id == 1
    assert len(stub.seen) == 2 and len(waits) == 1

    stub.seen.clear()
    stub.script = [DROP, (201, {}, {"id": 2, "name": "Globex"})]
    with client_for(stub, waits) as client, pytest.raises(ApiError) as error:
        client.organizations.create("Globex")  # it may have been created: not sent twice
    assert len(stub.seen) == 1
    assert (error.value.status, error.value.code) == (0, "unreachable")


def test_an_upload_sent_again_carries_its_files_again(stub: Stub, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG-first-file-bytes")
    stub.script = [throttled(503, **{"Retry-After": "0"}), (201, {}, {"created": 1, "tasks": []})]
    waits: list[float] = []
    with client_for(stub, waits) as client:
        result = client.tasks.upload(7, [image])
    assert result.created == 1
    bodies = [body for _method, _path, body in stub.seen]
    assert len(bodies) == 2 and all(b"\x89PNG-first-file-bytes" in body for body in bodies)
    assert stub.seen[1][1] == "/api/projects/7/upload/"


def test_an_answer_that_is_not_the_error_shape(stub: Stub) -> None:
    stub.script = [(502, {}, "<html>Bad gateway</html>")]
    with client_for(stub, []) as client, pytest.raises(ApiError) as error:
        client.projects.list()
    assert (error.value.status, error.value.code) == (502, "http_502")
