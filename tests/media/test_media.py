"""Media is served only through short-lived signed URLs, minted for members in the task JSON.

A URL is a capability: whoever holds it may open that one variant of that one task's image
until it expires, with or without a session; nothing else about it can be changed."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.core import signing
from django.urls import reverse, set_script_prefix
from PIL import Image
from rest_framework.test import APIClient

from defectlab.ingest.uploads import checked_image
from defectlab.labeling import services
from defectlab.labeling.models import Task
from defectlab.media import services as media_services
from defectlab.media.storage import LocalStorage, StorageError
from defectlab.synthetic import grayscale16
from defectlab.tenancy.models import Role
from tests.conftest import ROLES, Tenant, client_for, jpeg_bytes, png_bytes

SALT = "defectlab.media"


# --- helpers ------------------------------------------------------------------------------------


class Clock:
    """Stands in for the ``time`` module inside defectlab.media.services."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def add_task(tenant: Tenant, name: str, data: bytes) -> Task:
    (task,) = services.create_uploaded_tasks(tenant.project, [checked_image(name, data)])
    return task


def task_json(client: APIClient, task: Task) -> Any:
    response = client.get(f"/api/tasks/{task.pk}/")
    assert response.status_code == 200, response.content
    return response.json()


def urls_of(tenant: Tenant, task: Task) -> tuple[str, str]:
    body = task_json(client_for(tenant.user(Role.OWNER)), task)
    return body["image_url"], body["thumbnail_url"]


def fetch(url: str) -> Any:
    return APIClient().get(url)  # no session, no token: the URL alone must be enough


def token_of(url: str) -> str:
    match = re.fullmatch(r"/media/([^/]+)", url)
    assert match, url
    return match.group(1)


def with_payload(token: str, payload: list[Any]) -> str:
    """``token`` with its signed payload replaced and its original signature kept."""
    _, signature = token.rsplit(":", 1)
    body = signing.b64_encode(signing.JSONSerializer().dumps(payload)).decode()
    return f"{body}:{signature}"


def payload_of(token: str) -> list[Any]:
    return signing.Signer(salt=SALT).unsign_object(token)


def stored_files(root: Path) -> set[str]:
    if not root.exists():
        return set()
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def assert_not_found(response: Any) -> None:
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


# --- minting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_member_gets_image_and_thumbnail_urls(tenant: Tenant, role: str) -> None:
    body = task_json(client_for(tenant.user(role)), tenant.tasks[0])
    image_url, thumbnail_url = body["image_url"], body["thumbnail_url"]
    assert payload_of(token_of(image_url))[:2] == [tenant.tasks[0].pk, "image"]
    assert payload_of(token_of(thumbnail_url))[:2] == [tenant.tasks[0].pk, "thumb"]
    assert fetch(image_url).status_code == 200
    assert fetch(thumbnail_url).status_code == 200


def test_non_member_cannot_obtain_media_urls(tenant: Tenant, other_tenant: Tenant) -> None:
    stranger = client_for(other_tenant.user(Role.OWNER))
    task = tenant.tasks[0]
    response = stranger.get(f"/api/tasks/{task.pk}/")
    assert response.status_code == 404
    assert "image_url" not in response.content.decode()
    assert stranger.get(f"/api/projects/{tenant.project.pk}/tasks/").status_code == 404
    assert client_for(None).get(f"/api/tasks/{task.pk}/").status_code in (401, 403)


def test_an_address_nothing_can_read_gets_no_media_url_and_its_token_is_refused(
    tenant: Tenant,
) -> None:
    # Kept from before s3:// addresses were resolved on import: no reader knows the scheme.
    task = Task.objects.create(
        organization=tenant.organization,
        project=tenant.project,
        image="s3://bucket/a/part_7.jpg",
        file_name="part_7.jpg",
    )
    body = task_json(client_for(tenant.user(Role.OWNER)), task)
    assert (body["image_url"], body["thumbnail_url"]) == (None, None)
    assert_not_found(fetch(media_services.signed_url(task.pk, "image")))


def test_repeated_calls_within_half_the_ttl_give_the_same_url(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MEDIA_URL_TTL = 600
    step = 300
    start = (int(time.time()) // step + 1) * step  # the next half-TTL boundary
    clock = Clock(start + 1)
    monkeypatch.setattr(media_services, "time", clock)
    first = urls_of(tenant, tenant.tasks[0])
    clock.now = start + step - 1
    assert urls_of(tenant, tenant.tasks[0]) == first  # the browser cache keeps working
    clock.now = start + step + 1
    later = urls_of(tenant, tenant.tasks[0])
    assert later != first
    for issued, urls in ((start + 1, first), (clock.now, later)):
        for url in urls:
            expires = payload_of(token_of(url))[2]
            # At least half the TTL, never more than the TTL, from when it was handed out.
            assert issued + 600 - step <= expires <= issued + 600
            assert fetch(url).status_code == 200


@pytest.mark.parametrize("ttl", [600, 61, 2])
def test_no_media_url_opens_after_the_ttl_from_when_it_was_issued(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch, ttl: int
) -> None:
    """DEFECTLAB_MEDIA_URL_TTL is a maximum wherever in a caching step the link is minted."""
    settings.MEDIA_URL_TTL = ttl
    step = max(1, ttl // 2)
    boundary = (int(time.time()) // step + 1) * step
    clock = Clock(boundary)
    monkeypatch.setattr(media_services, "time", clock)
    for issued in (boundary, boundary + 0.001, boundary + step / 2, boundary + step - 0.001):
        clock.now = issued
        image_url, thumbnail_url = urls_of(tenant, tenant.tasks[0])
        clock.now = issued + ttl / 2 - 0.001
        assert fetch(image_url).status_code == 200  # still good for half the TTL
        clock.now = issued + ttl + 0.001
        assert_not_found(fetch(image_url))
        assert_not_found(fetch(thumbnail_url))


# --- serving ------------------------------------------------------------------------------------


def test_image_url_serves_the_original_jpeg_bytes_with_a_private_cache_header(
    tenant: Tenant, settings: Any
) -> None:
    data = jpeg_bytes(64, 48)
    task = add_task(tenant, "part.jpg", data)
    response = fetch(urls_of(tenant, task)[0])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response.content == data
    match = re.fullmatch(r"private, max-age=(\d+)", response["Cache-Control"])
    assert match, response["Cache-Control"]
    ttl = settings.MEDIA_URL_TTL
    assert 0 < int(match.group(1)) <= ttl + ttl // 2


def test_media_url_is_a_capability_that_needs_no_session(tenant: Tenant) -> None:
    image_url, _ = urls_of(tenant, tenant.tasks[0])
    anonymous = APIClient()
    assert anonymous.get(f"/api/tasks/{tenant.tasks[0].pk}/").status_code in (401, 403)
    response = anonymous.get(image_url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert decoded(response.content).size == (64, 48)


def test_16bit_tiff_image_url_serves_an_8bit_png_that_is_cached(
    tenant: Tenant, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = add_task(tenant, "sensor.tif", encode(grayscale16(seed=5, width=80, height=60), "TIFF"))
    image_url, _ = urls_of(tenant, task)
    files_before = stored_files(storage_dir)
    response = fetch(image_url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"].startswith("private, max-age=")
    shown = decoded(response.content)
    assert (shown.format, shown.mode, shown.size) == ("PNG", "L", (80, 60))
    assert len(stored_files(storage_dir) - files_before) == 1  # the display copy, kept

    def no_rendering(*args: object, **kwargs: object) -> object:
        raise AssertionError("the display copy was rendered again")

    monkeypatch.setattr(media_services, "render_for_display", no_rendering)
    again = fetch(image_url)
    assert (again.status_code, again.content) == (200, response.content)


def test_thumbnail_is_a_jpeg_fitting_256_that_is_computed_once_and_cached(
    tenant: Tenant, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = add_task(tenant, "wide.jpg", jpeg_bytes(640, 480))
    _, thumbnail_url = urls_of(tenant, task)
    files_before = stored_files(storage_dir)
    first = fetch(thumbnail_url)
    assert first.status_code == 200
    assert first["Content-Type"] == "image/jpeg"
    shown = decoded(first.content)
    assert shown.format == "JPEG"
    assert shown.size == (256, 192)  # fits 256x256, aspect ratio kept
    assert len(stored_files(storage_dir) - files_before) == 1  # the cached thumbnail

    def no_thumbnail(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the thumbnail was computed again")

    monkeypatch.setattr(media_services, "thumbnail", no_thumbnail)
    second = fetch(thumbnail_url)
    assert (second.status_code, second.content) == (200, first.content)


# --- refusing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_tampered_token_is_not_found(tenant: Tenant, where: str) -> None:
    token = token_of(urls_of(tenant, tenant.tasks[0])[0])
    index = 0 if where == "payload" else len(token) - 1
    flipped = "B" if token[index] == "A" else "A"
    tampered = token[:index] + flipped + token[index + 1 :]
    assert tampered != token
    assert fetch(f"/media/{token}").status_code == 200
    assert_not_found(fetch(f"/media/{tampered}"))


def test_image_token_cannot_be_turned_into_another_task_or_variant(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    token = token_of(urls_of(tenant, tenant.tasks[0])[0])
    task_id, variant, expires = payload_of(token)
    assert with_payload(token, [task_id, variant, expires]) == token  # the forging is faithful
    for forged in (
        [tenant.tasks[1].pk, variant, expires],
        [other_tenant.tasks[0].pk, variant, expires],
        [task_id, "thumb", expires],
        [task_id, variant, expires + 86_400],
    ):
        assert_not_found(fetch(f"/media/{with_payload(token, forged)}"))


def test_expired_url_is_not_found(
    tenant: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MEDIA_URL_TTL = 60
    image_url, thumbnail_url = urls_of(tenant, tenant.tasks[0])
    assert fetch(image_url).status_code == 200
    # One TTL later at the most, the URL is dead.
    monkeypatch.setattr(media_services, "time", Clock(time.time() + 60 + 1))
    assert_not_found(fetch(image_url))
    assert_not_found(fetch(thumbnail_url))


def test_url_signed_with_an_expiry_in_the_past_is_not_found(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    signer = signing.Signer(salt=SALT)
    past = signer.sign_object([task.pk, "image", int(time.time()) - 1])
    future = signer.sign_object([task.pk, "image", int(time.time()) + 60])
    assert fetch(f"/media/{future}").status_code == 200
    assert_not_found(fetch(f"/media/{past}"))


def test_token_signed_for_another_purpose_or_variant_is_not_found(tenant: Tenant) -> None:
    task = tenant.tasks[0]
    expires = int(time.time()) + 60
    assert_not_found(fetch(f"/media/{signing.Signer().sign_object([task.pk, 'image', expires])}"))
    other_salt = signing.Signer(salt="defectlab.invite").sign_object([task.pk, "image", expires])
    assert_not_found(fetch(f"/media/{other_salt}"))
    original = signing.Signer(salt=SALT).sign_object([task.pk, "original", expires])
    assert_not_found(fetch(f"/media/{original}"))
    assert_not_found(fetch("/media/not-a-token"))


# --- deleting -----------------------------------------------------------------------------------


def test_deleting_a_task_removes_its_stored_file_after_commit(
    tenant: Tenant, storage_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    doomed, kept = tenant.tasks[0], tenant.tasks[1]
    image_url, _ = urls_of(tenant, doomed)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_for(tenant.user(Role.OWNER)).delete(f"/api/tasks/{doomed.pk}/")
        assert response.status_code == 204
        assert (storage_dir / doomed.image).is_file()  # not before the transaction commits
    assert callbacks
    assert not (storage_dir / doomed.image).exists()
    assert (storage_dir / kept.image).is_file()
    assert_not_found(fetch(image_url))
    tenant.project.refresh_from_db()
    assert tenant.project.count_new == len(tenant.tasks) - 1


def test_deleting_a_task_also_removes_its_cached_thumbnail_and_display_copy(
    tenant: Tenant, storage_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    files_before = stored_files(storage_dir)
    task = add_task(tenant, "sensor.tif", encode(grayscale16(seed=2, width=40, height=30), "TIFF"))
    for url in urls_of(tenant, task):
        assert fetch(url).status_code == 200  # leaves a display copy and a thumbnail in storage
    assert len(stored_files(storage_dir) - files_before) == 3
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(tenant.user(Role.OWNER)).delete(f"/api/tasks/{task.pk}/")
    assert response.status_code == 204
    # A deleted image must not live on in storage as derived copies.
    assert stored_files(storage_dir) == files_before


def test_png_task_image_url_serves_the_png_unchanged(tenant: Tenant) -> None:
    data = png_bytes(30, 20, (10, 200, 30))
    task = add_task(tenant, "green.png", data)
    response = fetch(urls_of(tenant, task)[0])
    assert (response.status_code, response["Content-Type"]) == (200, "image/png")
    assert response.content == data


def test_local_storage_opens_plain_keys_directly_and_checks_every_other(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.save("org/1/a.jpg", b"plain")
    (tmp_path / "outside.jpg").write_bytes(b"secret")
    for key in ("org/1/a.jpg", "org//1/a.jpg", "org/./1/a.jpg", "./org/1/a.jpg"):
        with storage.open(key) as file:
            assert file.read() == b"plain"
    for key in ("", "/org/1/a.jpg", "../outside.jpg", "org/../../outside.jpg", "org\\1", "a\x00"):
        with pytest.raises(StorageError):
            storage.open(key)


def test_a_signed_url_is_the_media_route_under_the_script_prefix_and_opens_its_grant() -> None:
    try:
        for prefix in ("/", "/defects/"):
            set_script_prefix(prefix)
            url = media_services.signed_url(42, "thumb")
            token = url.rsplit("/", 1)[1]
            assert url == reverse("media", kwargs={"token": token})
            assert url.startswith(f"{prefix}media/")
            grant = media_services.read_grant(token)
            assert grant is not None and (grant.task_id, grant.variant) == (42, "thumb")
    finally:
        set_script_prefix("/")
