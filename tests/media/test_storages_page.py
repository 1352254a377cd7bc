"""The storages page: add a bucket, "test connection" in plain words, sync, remove — against the
loopback S3 server (`loopback_only`: nothing else is ever resolved or reached)."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.jobs.models import Job
from defectlab.jobs.runner import run_job
from defectlab.labeling.models import Task
from defectlab.media.models import StorageConnection
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, png_bytes
from tests.media.conftest import ACCESS_KEY, REGION, SECRET_KEY
from tests.media.s3server import LoopbackS3
from tests.media.storages import allow_loopback, clear_caches, put
from tests.web.test_pages import signed_in

pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.django_db]

fresh_caches = pytest.fixture(autouse=True)(clear_caches)


def form(server: LoopbackS3, bucket: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "line 3 camera",
        "role": "source",
        "endpoint_url": server.url(),
        "region": REGION,
        "bucket": bucket,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "path_style": "on",
        "sse": "none",
        "media_mode": "presign",
        **changes,
    }


def url(tenant: Tenant) -> str:
    return f"/projects/{tenant.project.pk}/storages/"


def test_testing_an_internal_storage_names_the_rule_until_it_is_allowed(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    refused = client.post(url(tenant), {"action": "test", **form(s3_server, bucket)})
    html = refused.content.decode()
    assert "The storage cannot be used yet" in html and "loopback" in html
    allow_loopback(settings)
    works = client.post(url(tenant), {"action": "test", **form(s3_server, bucket)})
    assert "The connection works" in works.content.decode()
    missing = client.post(url(tenant), {"action": "test", **form(s3_server, "no-such-bucket")})
    assert 'data-code="bucket_missing"' in missing.content.decode()
    assert not StorageConnection.objects.exists()  # testing saves nothing


def test_adding_a_source_then_syncing_it_makes_tasks(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    put(
        s3_server,
        bucket,
        {"a.png": png_bytes(20, 10), "b.png": png_bytes(30, 20), "notes.txt": b"x"},
    )
    client = signed_in(tenant.user(Role.MANAGER))
    page = client.post(url(tenant), {"action": "add", **form(s3_server, bucket)}, follow=True)
    assert "The storage line 3 camera was added." in page.content.decode()
    storage = StorageConnection.objects.get()
    assert SECRET_KEY not in storage.secret_key_encrypted
    assert SECRET_KEY not in page.content.decode()  # the secret is never shown again

    response = client.post(url(tenant), {"action": "sync", "storage": storage.pk})
    job = Job.objects.get(kind="storage_sync")
    assert response["Location"] == f"/jobs/{job.pk}/"
    before = Task.objects.filter(project=tenant.project).count()
    run_job(job.pk)
    assert Task.objects.filter(project=tenant.project).count() == before + 2

    client.post(url(tenant), {"action": "delete", "storage": storage.pk})
    assert not StorageConnection.objects.exists()
    assert Task.objects.filter(project=tenant.project).count() == before + 2  # tasks stay


def test_a_bad_form_keeps_what_was_typed_and_says_why(
    tenant: Tenant, s3_server: LoopbackS3
) -> None:
    page = signed_in(tenant.user(Role.MANAGER)).post(
        url(tenant), {"action": "add", **form(s3_server, "bucket", region="Not A Region")}
    )
    html = page.content.decode()
    assert "not a region name like us-east-1" in html and 'value="line 3 camera"' in html


def test_annotators_cannot_open_it(tenant: Tenant) -> None:
    page = signed_in(tenant.user(Role.ANNOTATOR)).get(url(tenant), follow=True)
    assert "Your role does not allow this." in page.content.decode()
