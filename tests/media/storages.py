"""Helpers for the storage-connection tests: connections on the loopback S3 server, objects in
its buckets, and running the jobs a test started (no broker: the job runs in the test)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from defectlab.jobs.models import Job
from defectlab.jobs.runner import run_job
from defectlab.media import connections
from defectlab.media.models import StorageConnection
from defectlab.tenancy.models import Role
from tests.conftest import Tenant
from tests.media.conftest import ACCESS_KEY, REGION, SECRET_KEY, admin_client
from tests.media.s3server import LoopbackS3


def clear_caches() -> Iterator[None]:
    """(A fixture in the test modules.) Cached storages are per process: a test must not meet
    the previous test's, and their pooled sockets are closed before the test ends."""
    connections.clear_caches()
    yield
    connections.clear_caches()


def record_sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """(A fixture in the test modules.) Job ids sent to the queue; the test runs them."""
    ids: list[int] = []
    monkeypatch.setattr("defectlab.jobs.services.send", ids.append)
    return ids


def allow_loopback(settings: Any) -> None:
    """The loopback S3 server is 127.0.0.1: only the operator's setting can open loopback."""
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]


def settings_for(server: LoopbackS3, bucket: str, tenant: Tenant, **changes: Any) -> dict[str, Any]:
    return {
        "project": tenant.project.pk,
        "role": "source",
        "name": "line 3 camera",
        "endpoint_url": server.url(),
        "bucket": bucket,
        "region": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        **changes,
    }


def make_connection(
    server: LoopbackS3, bucket: str, tenant: Tenant, **changes: Any
) -> StorageConnection:
    fields = settings_for(server, bucket, tenant, **changes)
    fields.pop("project")
    return connections.create_connection(
        tenant.project,
        tenant.user(Role.OWNER),
        role=fields.pop("role"),
        secret_key=fields.pop("secret_key"),
        **fields,
    )


def put(server: LoopbackS3, bucket: str, objects: dict[str, bytes]) -> None:
    client = admin_client(server)
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    client.close()


def get(server: LoopbackS3, bucket: str, key: str) -> dict[str, Any]:
    client = admin_client(server)
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
        return {**answer, "Body": answer["Body"].read()}
    finally:
        client.close()


def keys(server: LoopbackS3, bucket: str) -> list[str]:
    client = admin_client(server)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    client.close()
    return [item["Key"] for item in listed]


def png(width: int, height: int, color: tuple[int, int, int] = (90, 90, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def run(job_id: int) -> Job:
    run_job(job_id)
    return Job.objects.get(pk=job_id)
