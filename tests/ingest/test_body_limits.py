"""Request bodies: a declared size above the limit is refused before a byte is read; an upload is
read only up to its file's limit, then refused whole (nothing imported).

The requests go through Django's full WSGI handler with a body stream that counts (or forbids)
reads, which is what a WSGI server hands the application."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.test.client import ClientHandler, RequestFactory

from defectlab.labeling.models import Task
from defectlab.tenancy.models import Role, User
from tests.conftest import Tenant, png_bytes

MB = 1024 * 1024
BOUNDARY = "----defectlab-test-boundary"


class NeverRead(io.RawIOBase):
    """A body the server must not touch."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the server read a body it should have refused unread")


class CountingBody(io.RawIOBase):
    """A body produced as it is read (nothing held in memory), counting what was read."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts = parts
        self.pending = b""
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            self.pending = next(self.parts, b"")
            if not self.pending:
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        self.read_bytes += size
        return size


def multipart(fields: dict[str, str], file_field: str, name: str, size: int) -> tuple[int, Any]:
    """A multipart body with ``fields`` and one file of ``size`` zero bytes: its length, and a
    factory for the body (each call a fresh stream)."""
    head = (
        b"".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields.items()
        )
        + (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="{file_field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
    )
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def parts() -> Iterator[bytes]:
        yield head
        left = size
        while left:
            chunk = min(left, 256 * 1024)
            yield bytes(chunk)
            left -= chunk
        yield tail

    return len(head) + size + len(tail), lambda: CountingBody(parts())


def call(
    path: str,
    body: io.RawIOBase,
    content_length: int | None,
    content_type: str,
    user: User | None = None,
    **extra: str,
) -> Any:
    """POST through the whole WSGI handler, as a server would hand it over."""
    environ = RequestFactory()._base_environ(
        PATH_INFO=path,
        REQUEST_METHOD="POST",
        CONTENT_TYPE=content_type,
        **{"wsgi.input": body},
        **extra,
    )
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    if user is not None:
        client = Client()
        client.force_login(user)
        environ["HTTP_COOKIE"] = f"sessionid={client.cookies['sessionid'].value}"
    return ClientHandler(enforce_csrf_checks=False)(environ)


def text(response: Any) -> str:
    return str(response.content.decode())


def error(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.content)["error"])


@pytest.mark.parametrize(
    ("path", "signed_in"),
    [
        ("/api/projects/{project}/upload/", True),
        ("/api/projects/{project}/upload/", False),
        ("/api/projects/{project}/import-dataset/", True),
        ("/projects/{project}/data/", True),
        ("/api/projects/", True),
        ("/api/auth/login/", False),
    ],
)
def test_a_declared_300_mb_body_is_refused_without_reading_it(
    tenant: Tenant, settings: Any, path: str, signed_in: bool
) -> None:
    settings.MAX_UPLOAD_MB = 200
    settings.MAX_ARCHIVE_MB = 250  # the largest upload this installation takes
    user = tenant.user(Role.MANAGER) if signed_in else None
    response = call(
        path.format(project=tenant.project.pk),
        NeverRead(),
        300 * MB,
        f"multipart/form-data; boundary={BOUNDARY}",
        user,
    )
    assert response.status_code == 413
    message = error(response)["message"] if path.startswith("/api/") else text(response)
    assert "300.0\xa0MB" in message and "at most" in message
    assert response["Connection"] == "close"
    assert Task.objects.filter(project=tenant.project).count() == len(tenant.tasks)


def test_the_refusal_speaks_the_callers_language(tenant: Tenant, settings: Any) -> None:
    response = call(
        "/api/projects/", NeverRead(), 300 * MB, "application/json", HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    assert response.status_code == 413
    assert "此地址最多接受" in error(response)["message"]


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/api/projects/{project}/upload/", {}),
        ("/projects/{project}/data/", {"action": "upload"}),
    ],
)
def test_an_image_past_the_limit_stops_being_read_there(
    tenant: Tenant, settings: Any, path: str, fields: dict[str, str]
) -> None:
    settings.MAX_UPLOAD_MB = 1
    settings.MAX_ARCHIVE_MB = 64  # so the declared 30 MB passes the first check
    length, body = multipart(fields, "files", "huge.png", 30 * MB)
    stream = body()
    response = call(
        path.format(project=tenant.project.pk),
        stream,
        length,
        f"multipart/form-data; boundary={BOUNDARY}",
        tenant.user(Role.MANAGER),
    )
    assert response.status_code == 413, response.content
    assert "huge.png is larger than the 1 MB limit." in text(response)
    assert stream.read_bytes < 2 * MB  # not the 30 MB that were sent
    assert Task.objects.filter(project=tenant.project).count() == len(tenant.tasks)


def test_an_archive_past_its_limit_stops_being_read_there(tenant: Tenant, settings: Any) -> None:
    settings.MAX_UPLOAD_MB = 1
    settings.MAX_ARCHIVE_MB = 4
    length, body = multipart({}, "files", "line3.zip", 4 * MB + MB // 2)
    stream = body()
    response = call(
        f"/api/projects/{tenant.project.pk}/upload/",
        stream,
        length,
        f"multipart/form-data; boundary={BOUNDARY}",
        tenant.user(Role.MANAGER),
    )
    assert response.status_code == 413, response.content
    assert error(response)["message"] == "line3.zip is larger than 4 MB."
    assert stream.read_bytes < 4 * MB + MB // 4


def test_a_body_without_a_length_is_refused_not_read_as_empty(tenant: Tenant) -> None:
    response = call(
        f"/api/projects/{tenant.project.pk}/upload/",
        NeverRead(),
        None,
        f"multipart/form-data; boundary={BOUNDARY}",
        tenant.user(Role.MANAGER),
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 411
    assert "Content-Length" in error(response)["message"]


def test_a_body_longer_than_it_declares_is_read_only_as_far_as_declared(
    tenant: Tenant, settings: Any
) -> None:
    settings.MAX_UPLOAD_MB = 1
    length, body = multipart({}, "files", "a.png", 30 * MB)
    stream = body()
    response = call(
        f"/api/projects/{tenant.project.pk}/upload/",
        stream,
        64 * 1024,  # a lie: 30 MB follow
        f"multipart/form-data; boundary={BOUNDARY}",
        tenant.user(Role.MANAGER),
    )
    assert 400 <= response.status_code < 500
    assert stream.read_bytes <= 64 * 1024
    assert length > 30 * MB


def test_uploads_within_the_limits_still_land(tenant: Tenant, settings: Any) -> None:
    settings.MAX_UPLOAD_MB = 1
    image = png_bytes(40, 30)
    client = Client()
    client.force_login(tenant.user(Role.MANAGER))
    response = client.post(
        f"/api/projects/{tenant.project.pk}/upload/",
        {"files": [io.BytesIO(image)]},
    )
    assert response.status_code == 201, response.content
