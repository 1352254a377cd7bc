"""The model registry's pages: the organization's models with an upload, a model's page with
its versions and aliases; readers see, managers change; another organization's model is 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from defectlab.inference.models import DetectionModel, ModelAlias, ModelVersion
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, signed_in
from tests.inference.registry import models as files

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_model(
    tenant: Tenant, drain: Callable[[], None], django_capture_on_commit_callbacks: Any
) -> DetectionModel:
    client = signed_in(tenant.user(Role.MANAGER))
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            f"/o/{tenant.organization.pk}/models/",
            {"name": "Scratches", "file": SimpleUploadedFile("s.onnx", files.good())},
        )
    model = DetectionModel.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/models/{model.pk}/"
    drain()
    return model


def test_upload_from_the_list_makes_the_model_and_its_page_shows_the_version(
    tenant: Tenant, ready_model: DetectionModel
) -> None:
    page = signed_in(tenant.user(Role.ANNOTATOR)).get(f"/models/{ready_model.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="version-1" data-state="ready"' in html
    assert "YOLOv8 / YOLO11 detection" in html and "scratch, dent" in html
    assert "Acme QA" in html and "AGPL-3.0" in html
    assert 'name="action" value="version"' not in html  # a reader gets no forms
    listing = signed_in(tenant.user(Role.ANNOTATOR)).get(f"/o/{tenant.organization.pk}/models/")
    assert "Scratches" in listing.content.decode()
    assert 'id="upload"' not in listing.content.decode()


def test_a_manager_moves_an_alias_with_the_select_and_edits_a_version(
    tenant: Tenant, ready_model: DetectionModel
) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    url = f"/models/{ready_model.pk}/"
    client.post(url, {"action": "alias", "alias": "production", "version": "1"})
    assert ModelAlias.objects.get().version.number == 1
    client.post(url, {"action": "version", "id": ModelVersion.objects.get().pk, "conf": "0.4"})
    assert ModelVersion.objects.get().conf == 0.4
    html = client.get(url).content.decode()
    assert 'id="alias-production"' in html and '<option value="1" selected>' in html
    client.post(url, {"action": "unalias", "alias": "production"})
    assert not ModelAlias.objects.exists()


def test_a_refused_upload_is_a_message_in_chinese_and_keeps_nothing(
    tenant: Tenant, ready_model: DetectionModel
) -> None:
    client = signed_in(tenant.user(Role.MANAGER), "zh-hans")
    answer = client.post(
        f"/models/{ready_model.pk}/versions/",
        {"action": "upload", "file": SimpleUploadedFile("best.pt", b"PK\x03\x04 torch")},
        follow=True,
    )
    assert "此文件是 ZIP 压缩包，不是 ONNX 模型" in answer.content.decode()
    assert ModelVersion.objects.count() == 1
    page = client.get(f"/models/{ready_model.pk}/").content.decode()
    assert "版本" in page and "输出格式" in page


def test_readers_cannot_change_and_strangers_get_404(
    tenant: Tenant, other_tenant: Tenant, ready_model: DetectionModel
) -> None:
    reader = signed_in(tenant.user(Role.REVIEWER))
    reader.post(
        f"/models/{ready_model.pk}/", {"action": "alias", "alias": "production", "version": "1"}
    )
    assert not ModelAlias.objects.exists()
    stranger = signed_in(other_tenant.user(Role.OWNER))
    assert stranger.get(f"/models/{ready_model.pk}/").status_code == 404
    assert stranger.get(f"/o/{tenant.organization.pk}/models/").status_code == 404


def test_a_refused_file_for_a_new_name_makes_no_model(tenant: Tenant) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    client.post(
        f"/o/{tenant.organization.pk}/models/",
        {"name": "Dents", "file": SimpleUploadedFile("d.onnx", b"not a model")},
    )
    assert not DetectionModel.objects.exists()


def test_the_page_follows_a_check_then_reloads_itself_once_it_is_done(
    tenant: Tenant, ready_model: DetectionModel
) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    url = f"/models/{ready_model.pk}/"
    version = ModelVersion.objects.get()
    version.state = "validating"
    version.save(update_fields=["state"])
    polling = client.get(url, headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in polling.content.decode()
    assert "HX-Refresh" not in polling
    version.state = "ready"
    version.save(update_fields=["state"])
    # The check ended: the whole page again, so its alias form offers the ready version.
    assert client.get(url, headers={"HX-Request": "true"})["HX-Refresh"] == "true"
    assert "HX-Refresh" not in client.get(url)
