"""The images are trade secrets: the service keeps what it answered, never what it was shown.
After detect calls — multipart (a part over any spooling size), raw, base64 JSON, one broken
image and one refused request among them — no byte sequence of the images is in the database,
the stored files, the temporary directory or any log line."""

from __future__ import annotations

import base64
import io
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings

from tests.conftest import Tenant
from tests.serving.conftest import bearer, box_model, jpeg, key_of, put_model

pytestmark = pytest.mark.django_db(transaction=True)


def database_text() -> str:
    """Every value of every row of every table, as text."""
    values: list[str] = []
    for model in apps.get_models():
        names = [field.attname for field in model._meta.concrete_fields]
        for row in model.objects.values_list(*names):
            values.extend(repr(value) for value in row)
    return "\n".join(values)


def noisy_jpeg(width: int, height: int, marker: bytes) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    noise.save(buffer, "JPEG", quality=95, comment=marker)
    return buffer.getvalue()


def files_under(root: Path, since: float = 0.0) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime >= since:
                found.append(path)
        except OSError:
            continue
    return found


def test_no_byte_of_an_image_is_kept_anywhere(
    serve: Any, tenant: Tenant, caplog: pytest.LogCaptureFixture, storage_dir: Path
) -> None:
    put_model(tenant.organization, "panels", box_model())
    key = key_of(tenant.organization)
    marker = secrets.token_hex(24).encode()
    big = noisy_jpeg(1600, 1200, marker)  # over a megabyte: a part a parser might spool to disk
    small = jpeg(320, 240, marker=marker)
    assert len(big) > 1024 * 1024
    broken = b"\x89PNG\r\n\x1a\n" + marker + os.urandom(64)
    started = os.path.getmtime(tempfile.gettempdir()) - 1
    caplog.set_level(logging.DEBUG)
    with serve() as client:
        answers = [
            client.post(
                "/v1/detect",
                params={"model": "panels"},
                files=[("image", big), ("image", broken), ("image", small)],
                headers=bearer(key),
            ),
            client.post(
                "/v1/detect?model=panels",
                content=small,
                headers={**bearer(key), "Content-Type": "image/jpeg"},
            ),
            client.post(
                "/v1/detect",
                json={"model": "panels", "images": [{"data": base64.b64encode(small).decode()}]},
                headers=bearer(key),
            ),
            client.post(  # refused after its body was read: an unknown class
                "/v1/detect",
                params={"model": "panels", "classes": "crack"},
                files={"image": small},
                headers=bearer(key),
            ),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 400]
    assert answers[0].json()["results"][1]["error"]
    needles = [marker, marker.hex().encode(), base64.b64encode(small[:48])[:40]]

    text = database_text().encode()
    for needle in needles:
        assert needle not in text
    database_files = (
        [settings.DATABASES["default"]["NAME"]]
        if "sqlite" in settings.DATABASES["default"]["ENGINE"]
        else []
    )
    for name in database_files:
        for path in Path(str(name)).parent.glob(Path(str(name)).name + "*"):
            assert marker not in path.read_bytes(), path
    for path in files_under(storage_dir) + files_under(Path(tempfile.gettempdir()), started):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        assert marker not in data, path
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    assert "detection call" in logged  # the calls were logged …
    for needle in needles:
        assert needle.decode() not in logged  # … without their images
