"""`/api/models/`: members read, managers change, other organizations get 404; an upload is
checked at once (400 with the code, nothing kept) or answers 202 with a validating version that
its job makes ready; aliases move to ready versions only (409 otherwise)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from defectlab.inference.models import ModelAlias, ModelVersion
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, client_for
from tests.inference.registry import models as files

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_id(tenant: Tenant) -> int:
    answer = client_for(tenant.user(Role.MANAGER)).post(
        "/api/models/",
        {"organization": tenant.organization.pk, "name": "Scratches", "description": "line 3"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return int(answer.json()["id"])


def post_version(client: Any, model_id: int, data: bytes, **fields: Any) -> Any:
    form = {"file": SimpleUploadedFile("scratch.onnx", data), **fields}
    return client.post(f"/api/models/{model_id}/versions/", form, format="multipart")


@pytest.fixture
def uploaded(
    tenant: Tenant,
    model_id: int,
    drain: Callable[[], None],
    django_capture_on_commit_callbacks: Any,
) -> dict[str, Any]:
    """Version 1, checked and ready."""
    with django_capture_on_commit_callbacks(execute=True):
        answer = post_version(client_for(tenant.user(Role.MANAGER)), model_id, files.good())
    assert answer.status_code == 202, answer.content
    drain()
    return dict(answer.json())


def test_upload_answers_202_validating_then_the_job_makes_it_ready(
    tenant: Tenant, model_id: int, uploaded: dict[str, Any]
) -> None:
    assert uploaded["state"] == "validating" and uploaded["number"] == 1
    assert uploaded["names"] == ["scratch", "dent"] and uploaded["input_size"] == [640, 640]
    assert (uploaded["author"], uploaded["license"], uploaded["layout"]) == (
        "Acme QA",
        "AGPL-3.0",
        "yolov8",
    )
    reader = client_for(tenant.user(Role.ANNOTATOR))
    version = reader.get(f"/api/models/{model_id}/versions/1/").json()
    assert version["state"] == "ready" and version["error"] == ""
    job = reader.get(f"/api/jobs/{uploaded['job']}/").json()
    assert job["state"] == "succeeded"
    listed = reader.get(f"/api/models/{model_id}/versions/").json()
    assert [v["number"] for v in listed["results"]] == [1]
    models = reader.get(f"/api/models/?organization={tenant.organization.pk}").json()["results"]
    assert [(m["name"], m["versions"]) for m in models] == [("Scratches", 1)]


def test_the_file_downloads_as_uploaded(tenant: Tenant, model_id: int, uploaded: Any) -> None:
    answer = client_for(tenant.user(Role.ANNOTATOR)).get(f"/api/models/{model_id}/versions/1/file/")
    assert answer.status_code == 200
    body = b"".join(answer.streaming_content)
    assert hashlib.sha256(body).hexdigest() == uploaded["sha256"]
    assert "Scratches-v1.onnx" in answer["Content-Disposition"]


def test_a_refused_upload_is_a_400_in_the_persons_language_and_keeps_nothing(
    tenant: Tenant, model_id: int, queued: list[int]
) -> None:
    client = client_for(tenant.user(Role.MANAGER))
    answer = post_version(client, model_id, b"PK\x03\x04 a PyTorch checkpoint")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "not_onnx"
    assert "ONNX" in answer.json()["error"]["message"]
    manager = tenant.user(Role.MANAGER)
    manager.language = "zh-hans"
    manager.save(update_fields=["language"])
    chinese = post_version(client_for(manager), model_id, b"PK\x03\x04 x")
    assert chinese.status_code == 400
    assert chinese.json()["error"]["code"] == "not_onnx"
    assert any("\u4e00" <= c <= "\u9fff" for c in chinese.json()["error"]["message"]), (
        chinese.json()
    )
    assert not ModelVersion.objects.exists() and queued == []


def test_names_and_thresholds_come_from_the_form(tenant: Tenant, model_id: int) -> None:
    answer = post_version(
        client_for(tenant.user(Role.OWNER)),
        model_id,
        files.unnamed(),
        names="crack, pit，burr",
        conf="0.5",
        notes="from the line-3 run",
    )
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["names"] == ["crack", "pit", "burr"] and not body["names_from_model"]
    assert (body["conf"], body["notes"]) == (0.5, "from the line-3 run")
    bad = post_version(client_for(tenant.user(Role.OWNER)), model_id, files.good(), conf="2")
    assert bad.status_code == 400


def test_a_versions_notes_and_thresholds_change(
    tenant: Tenant, model_id: int, uploaded: Any
) -> None:
    client = client_for(tenant.user(Role.MANAGER))
    answer = client.patch(
        f"/api/models/{model_id}/versions/1/", {"notes": "better", "iou": 0.5}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert (answer.json()["notes"], answer.json()["iou"], answer.json()["conf"]) == (
        "better",
        0.5,
        0.25,
    )
    event = AuditEvent.objects.get(action=AuditAction.MODEL_VERSION_UPDATED)
    assert event.data["from"]["iou"] == 0.7 and event.data["to"]["iou"] == 0.5


def test_aliases_move_only_to_ready_versions(
    tenant: Tenant,
    model_id: int,
    uploaded: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(tenant.user(Role.MANAGER))
    moved = client.put(f"/api/models/{model_id}/aliases/production/", {"version": 1}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["version"] == 1
    with django_capture_on_commit_callbacks(execute=False):
        post_version(client, model_id, files.good(author="someone else"))  # stays validating
    refused = client.put(
        f"/api/models/{model_id}/aliases/production/", {"version": 2}, format="json"
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "version_not_ready"
    missing = client.put(
        f"/api/models/{model_id}/aliases/production/", {"version": 7}, format="json"
    )
    assert missing.status_code == 404
    shown = client.get(f"/api/models/{model_id}/").json()
    assert [(a["name"], a["version"]) for a in shown["aliases"]] == [("production", 1)]
    assert client.delete(f"/api/models/{model_id}/aliases/production/").status_code == 204
    assert client.delete(f"/api/models/{model_id}/aliases/production/").status_code == 404
    assert not ModelAlias.objects.exists()


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
def test_reading_roles_get_403_on_every_change(
    tenant: Tenant, model_id: int, uploaded: Any, role: str
) -> None:
    client = client_for(tenant.user(role))
    base = f"/api/models/{model_id}"
    assert client.get(f"{base}/").status_code == 200
    answers = [
        client.post(
            "/api/models/", {"organization": tenant.organization.pk, "name": "x"}, format="json"
        ),
        post_version(client, model_id, files.good(author="x")),
        client.patch(f"{base}/versions/1/", {"notes": "x"}, format="json"),
        client.put(f"{base}/aliases/production/", {"version": 1}, format="json"),
        client.delete(f"{base}/aliases/production/"),
    ]
    assert [answer.status_code for answer in answers] == [403] * 5


def test_another_organizations_model_is_a_404(
    other_tenant: Tenant, model_id: int, uploaded: Any
) -> None:
    client = client_for(other_tenant.user(Role.OWNER))
    base = f"/api/models/{model_id}"
    answers = [
        client.get(f"{base}/"),
        client.get(f"{base}/versions/"),
        client.get(f"{base}/versions/1/"),
        client.get(f"{base}/versions/1/file/"),
        client.get(f"{base}/versions/1/acceptance/"),
        post_version(client, model_id, files.good(author="x")),
        client.patch(f"{base}/versions/1/", {"notes": "x"}, format="json"),
        client.put(f"{base}/aliases/production/", {"version": 1}, format="json"),
        client.delete(f"{base}/aliases/production/"),
    ]
    assert [answer.status_code for answer in answers] == [404] * 9
    assert client.get("/api/models/").json()["results"] == []
    assert (
        client.post(
            "/api/models/",
            {"organization": model_id and ModelVersion.objects.get().organization_id, "name": "x"},
            format="json",
        ).status_code
        == 404
    )


def test_an_upload_over_the_model_limit_is_refused_while_it_streams(
    tenant: Tenant, model_id: int, settings: Any
) -> None:
    settings.MAX_MODEL_MB = 1
    answer = post_version(client_for(tenant.user(Role.MANAGER)), model_id, b"\0" * (2 << 20))
    assert answer.status_code == 413
    assert not ModelVersion.objects.exists()
