"""Storage connections through the API: secrets kept encrypted and never shown, the address policy
before any request (the loopback S3 server is 127.0.0.1, so the organization must allowlist it),
connections pinned to the checked addresses, "test connection" in plain words, roles, and
target storages receiving submitted annotations. Every request stays on this machine
(`loopback_only`)."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from django.db import connection as db

from defectlab.errors import Invalid
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import workflow
from defectlab.labeling.models import Annotation, TaskStatus
from defectlab.media import connections
from defectlab.media.models import StorageConnection
from defectlab.media.secrets import decrypt_secret
from defectlab.tenancy.models import AuditEvent, Role
from defectlab.transfer.sync import upload_export
from tests.conftest import Tenant, box, client_for
from tests.media.conftest import SECRET_KEY, admin_client
from tests.media.s3server import LoopbackS3
from tests.media.storages import (
    allow_loopback,
    clear_caches,
    get,
    keys,
    make_connection,
    record_sent,
    run,
    settings_for,
)

pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.django_db]

fresh_caches = pytest.fixture(autouse=True)(clear_caches)
sent = pytest.fixture(record_sent)


def manager(tenant: Tenant) -> Any:
    return client_for(tenant.user(Role.MANAGER))


# --- creating, reading, changing ----------------------------------------------------------------


def test_the_secret_is_encrypted_at_rest_and_never_returned(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    response = manager(tenant).post(
        "/api/storages/", settings_for(s3_server, bucket, tenant, prefix="/line3//"), format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert "secret_key" not in created and SECRET_KEY not in response.content.decode()
    assert (created["prefix"], created["path_style"], created["sse"]) == ("line3/", True, "none")
    assert created["organization"] == tenant.organization.pk

    with db.cursor() as cursor:
        cursor.execute(
            "SELECT secret_key_encrypted FROM media_storageconnection WHERE id = %s",
            [created["id"]],
        )
        (stored,) = cursor.fetchone()
    assert SECRET_KEY not in stored and stored.isascii()
    assert decrypt_secret(stored) == SECRET_KEY

    # Members read connections (without the secret); the audit trail has no secret either.
    annotator = client_for(tenant.user(Role.ANNOTATOR))
    listed = annotator.get(f"/api/storages/?project={tenant.project.pk}")
    shown = annotator.get(f"/api/storages/{created['id']}/")
    assert listed.json() == [shown.json()] and shown.json()["id"] == created["id"]
    for answer in (listed, shown):
        assert SECRET_KEY not in answer.content.decode()
        assert not any("secret" in name for name in shown.json())
    assert annotator.get(f"/api/storages/?project={tenant.project.pk + 1000}").json() == []
    event = AuditEvent.objects.get(action="storage.created")
    assert event.target_id == str(created["id"]) and SECRET_KEY not in json.dumps(event.data)


def test_changes_keep_the_secret_unless_a_new_one_is_sent_and_are_audited(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    storage = make_connection(s3_server, bucket, tenant)
    url = f"/api/storages/{storage.pk}/"
    response = manager(tenant).patch(url, {"prefix": "a/b", "media_mode": "proxy"}, format="json")
    assert response.status_code == 200, response.content
    storage.refresh_from_db()
    assert (storage.prefix, storage.media_mode) == ("a/b/", "proxy")
    assert decrypt_secret(storage.secret_key_encrypted) == SECRET_KEY
    rotated = manager(tenant).patch(url, {"secret_key": "rotated-key"}, format="json")
    assert rotated.status_code == 200
    storage.refresh_from_db()
    assert decrypt_secret(storage.secret_key_encrypted) == "rotated-key"
    changes = [
        event.data["changed"]
        for event in AuditEvent.objects.filter(action="storage.updated").order_by("id")
    ]
    assert changes == [["prefix", "media_mode"], ["secret_key"]]
    assert "rotated-key" not in json.dumps(changes)

    refused = manager(tenant).patch(url, {"role": "target"}, format="json")
    assert refused.status_code == 400
    assert manager(tenant).delete(url).status_code == 204
    assert not StorageConnection.objects.filter(pk=storage.pk).exists()
    assert AuditEvent.objects.filter(action="storage.deleted", target_id=str(storage.pk)).exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"secret_key": ""}, "secret_key"),
        ({"access_key": ""}, "access_key"),
        ({"endpoint_url": "s3.example.com"}, None),
        ({"region": "Not A Region!"}, "region"),
        ({"prefix": "a/../b"}, None),
        ({"bucket": "a/b"}, "bucket"),
        ({"role": "sideways"}, "role"),
        ({"public_endpoints": {"lab.example": "ftp://files"}}, None),
    ],
)
def test_bad_settings_are_refused_in_plain_words(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, changes: dict[str, Any], field: str | None
) -> None:
    body = settings_for(s3_server, bucket, tenant) | changes
    response = manager(tenant).post("/api/storages/", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["message"]
    if field:
        assert field in json.dumps(error.get("details", {}))
    assert not StorageConnection.objects.exists()


def test_names_are_unique_in_a_project(tenant: Tenant, s3_server: LoopbackS3, bucket: str) -> None:
    body = settings_for(s3_server, bucket, tenant)
    assert manager(tenant).post("/api/storages/", body, format="json").status_code == 201
    assert manager(tenant).post("/api/storages/", body, format="json").status_code == 409


def test_other_organizations_storages_and_projects_are_not_found(
    tenant: Tenant, other_tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    theirs = make_connection(s3_server, bucket, other_tenant)
    owner = client_for(tenant.user(Role.OWNER))
    assert owner.get("/api/storages/").json() == []
    for method, suffix in [("get", ""), ("patch", ""), ("delete", ""), ("post", "test/")]:
        response = getattr(owner, method)(f"/api/storages/{theirs.pk}/{suffix}", {}, format="json")
        assert response.status_code == 404
    assert owner.post(f"/api/storages/{theirs.pk}/sync/").status_code == 404
    into_theirs = owner.post(
        "/api/storages/", settings_for(s3_server, bucket, other_tenant), format="json"
    )
    assert into_theirs.status_code == 404
    assert StorageConnection.objects.filter(organization=other_tenant.organization).count() == 1


def test_annotators_may_not_create_test_or_sync(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    annotator = client_for(tenant.user(Role.ANNOTATOR))
    created = annotator.post(
        "/api/storages/", settings_for(s3_server, bucket, tenant), format="json"
    )
    assert created.status_code == 403
    assert created.json()["error"]["code"] == "forbidden"
    storage = make_connection(s3_server, bucket, tenant)
    for action in ("test", "sync"):
        assert annotator.post(f"/api/storages/{storage.pk}/{action}/").status_code == 403


# --- testing a connection -----------------------------------------------------------------------


def test_connection_ok_once_the_organization_allows_the_address(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant, sse="AES256", prefix="in/")
    response = manager(tenant).post(f"/api/storages/{storage.pk}/test/")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "problems": []}
    assert keys(s3_server, bucket) == []  # the probe was cleaned up


def test_connection_refused_by_the_policy_names_the_rule_and_sends_nothing(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = make_connection(s3_server, bucket, tenant)

    def no_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a client was made for an address the policy refuses")

    monkeypatch.setattr(connections, "make_client", no_client)
    response = manager(tenant).post(f"/api/storages/{storage.pk}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    [problem] = body["problems"]
    assert (problem["code"], problem["rule"]) == ("refused", "loopback")
    assert "127.0.0.1" in problem["message"] and "loopback" in problem["message"]
    assert "allowlist" in problem["message"]


def test_connection_bucket_missing(tenant: Tenant, s3_server: LoopbackS3, settings: Any) -> None:
    allow_loopback(settings)
    storage = make_connection(s3_server, "no-such-bucket-here", tenant)
    [problem] = manager(tenant).post(f"/api/storages/{storage.pk}/test/").json()["problems"]
    assert problem["code"] == "bucket_missing" and "no-such-bucket-here" in problem["message"]


def test_connection_wrong_credentials(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    # moto checks signatures only with its IAM checks on, and only for keys it issued.
    allow_loopback(settings)
    iam = admin_client(s3_server, service="iam")
    user = f"lab-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    iam.close()
    storage = make_connection(
        s3_server,
        bucket,
        tenant,
        access_key=key["AccessKeyId"],
        secret_key="not-the-secret-key",
    )
    with s3_server.iam_checks():
        [problem] = manager(tenant).post(f"/api/storages/{storage.pk}/test/").json()["problems"]
    assert problem["code"] == "credentials" and "secret key" in problem["message"]


def test_unsaved_settings_can_be_checked_with_a_saved_secret(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    saved = make_connection(s3_server, bucket, tenant)
    body = settings_for(s3_server, bucket, tenant, prefix="elsewhere/")
    assert manager(tenant).post("/api/storages/check/", body, format="json").json() == {
        "ok": True,
        "problems": [],
    }
    del body["secret_key"]
    without = manager(tenant).post("/api/storages/check/", body, format="json")
    assert without.status_code == 400  # no secret, and no saved connection to take it from
    reused = manager(tenant).post(
        "/api/storages/check/", body | {"connection": saved.pk}, format="json"
    )
    assert reused.json()["ok"] is True
    missing = manager(tenant).post(
        "/api/storages/check/",
        body | {"connection": saved.pk, "bucket": "not-there-at-all"},
        format="json",
    )
    assert missing.status_code == 200
    assert [problem["code"] for problem in missing.json()["problems"]] == ["bucket_missing"]
    assert StorageConnection.objects.count() == 1  # checking saves nothing


# --- pinning ------------------------------------------------------------------------------------


class Resolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.table[host]


def test_connections_go_to_the_checked_address_without_resolving_again(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    # The name is under .invalid: if anything but the checked address were used (botocore
    # resolving the name itself), the lookup would fail (see `loopback_only`). It starts with
    # "localhost" only because moto reads other dotted hosts as virtual-hosted bucket names.
    allow_loopback(settings)
    name = "localhost.minio.invalid"
    storage = make_connection(
        s3_server, bucket, tenant, endpoint_url=f"http://{name}:{s3_server.port}"
    )
    resolver = Resolver({name: ["127.0.0.1"]})
    assert connections.connection_problems(storage, resolver=resolver) == []
    assert resolver.asked == [name]
    opened = connections.open_storage(storage, resolver=resolver)
    opened.save("a.png", b"bytes")
    assert [item.key for item in opened.iter_keys()] == ["a.png"]
    opened.close()
    # The same name answering a private address the organization did not allow: refused.
    rebound = Resolver({name: ["10.0.0.7"]})
    [problem] = connections.connection_problems(storage, resolver=rebound)
    assert (problem["code"], problem["rule"]) == ("refused", "private")


# --- target storages ----------------------------------------------------------------------------


def submit(tenant: Tenant, callbacks: Any, version: int | None = None) -> Annotation:
    with callbacks(execute=True):
        return workflow.save_annotation(
            tenant.tasks[0],
            tenant.user(Role.ANNOTATOR),
            base_version=version,
            shapes=[box(tenant.label, 5, 6, 20, 30)],
            tags=["NG"],
            submit=True,
        )


def test_a_submitted_annotation_is_written_to_the_target_as_json(
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    sent: list[int],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    allow_loopback(settings)
    make_connection(s3_server, bucket, tenant, role="target", prefix="results/")
    task = tenant.tasks[0]
    with django_capture_on_commit_callbacks(execute=True):  # a draft: nothing is written
        workflow.save_annotation(
            task, tenant.user(Role.ANNOTATOR), base_version=None, shapes=[], submit=False
        )
    assert sent == []
    submit(tenant, django_capture_on_commit_callbacks, version=1)
    [job_id] = sent
    job = run(job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.result == {"key": f"results/annotations/{task.pk}.json", "version": 2}
    stored = get(s3_server, bucket, f"results/annotations/{task.pk}.json")
    assert stored["ContentType"] == "application/json"
    document = json.loads(stored["Body"])
    assert document["task"] == task.pk and document["version"] == 2
    assert document["author"] == tenant.user(Role.ANNOTATOR).email
    assert document["tags"] == ["NG"] and document["image"] == task.image
    assert (document["width"], document["height"]) == (64, 48)
    [shape] = document["shapes"]
    assert shape["points"] == [[5, 6], [20, 30]]  # image pixels
    assert (shape["label"], shape["label_name"]) == (tenant.label.pk, "scratch")
    assert document["submitted_at"]
    run(job_id)  # a second run writes the same thing
    assert json.loads(get(s3_server, bucket, f"results/annotations/{task.pk}.json")["Body"]) == (
        document
    )


def test_writes_finishing_out_of_order_never_roll_an_annotation_back(
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    sent: list[int],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    allow_loopback(settings)
    make_connection(s3_server, bucket, tenant, role="target")
    submit(tenant, django_capture_on_commit_callbacks)
    workflow.review(tenant.tasks[0], tenant.user(Role.REVIEWER), verdict="reject", comment="Redo")
    submit(tenant, django_capture_on_commit_callbacks, version=1)  # fixed and submitted again
    first, second = sent
    assert run(second).result["version"] == 2
    assert run(first).result["skipped"] == "newer"
    key = f"annotations/{tenant.tasks[0].pk}.json"
    assert json.loads(get(s3_server, bucket, key)["Body"])["version"] == 2


def test_targets_written_with_sse_carry_it(
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    sent: list[int],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    allow_loopback(settings)
    make_connection(s3_server, bucket, tenant, role="target", sse="AES256")
    submit(tenant, django_capture_on_commit_callbacks)
    assert run(sent[0]).state == JobState.SUCCEEDED
    stored = get(s3_server, bucket, f"annotations/{tenant.tasks[0].pk}.json")
    assert stored["ServerSideEncryption"] == "AES256"


def test_a_broken_target_never_loses_the_annotation_and_says_why(
    tenant: Tenant,
    s3_server: LoopbackS3,
    sent: list[int],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.JOB_MAX_ATTEMPTS = 1
    allow_loopback(settings)
    target = make_connection(s3_server, "no-such-target-bucket", tenant, role="target")
    annotation = submit(tenant, django_capture_on_commit_callbacks)
    job = run(sent[0])
    assert job.state == JobState.FAILED
    assert "no-such-target-bucket" in job.error
    target.refresh_from_db()
    assert "no-such-target-bucket" in target.last_error and target.last_error_at is not None
    assert Annotation.objects.get(pk=annotation.pk).version == 1
    tenant.tasks[0].refresh_from_db()
    assert tenant.tasks[0].status == TaskStatus.SUBMITTED
    # Visible to members, on the connection.
    shown = client_for(tenant.user(Role.ANNOTATOR)).get(f"/api/storages/{target.pk}/").json()
    assert "no-such-target-bucket" in shown["last_error"]


def test_a_target_the_policy_refuses_fails_its_job_at_once_naming_the_rule(
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    sent: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_connection(s3_server, bucket, tenant, role="target")  # 127.0.0.1 is not allowed
    submit(tenant, django_capture_on_commit_callbacks)
    job = run(sent[0])
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    assert "rule: loopback" in job.error
    assert keys(s3_server, bucket) == []


def test_a_failure_to_queue_the_write_does_not_undo_the_submit(
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_connection(s3_server, bucket, tenant, role="target")

    def broken(*args: Any, **kwargs: Any) -> Job:
        raise RuntimeError("the queue is down")

    monkeypatch.setattr("defectlab.transfer.sync.start_job", broken)
    annotation = submit(tenant, django_capture_on_commit_callbacks)
    assert Annotation.objects.filter(pk=annotation.pk).exists()
    assert not Job.objects.filter(kind="storage_write").exists()


def test_only_sources_sync(tenant: Tenant, s3_server: LoopbackS3, bucket: str) -> None:
    target = make_connection(s3_server, bucket, tenant, role="target")
    response = manager(tenant).post(f"/api/storages/{target.pk}/sync/")
    assert response.status_code == 400


def test_export_archives_can_be_copied_to_every_target(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    with pytest.raises(Invalid):
        upload_export(tenant.project, io.BytesIO(b"zip"), "none.zip")
    allow_loopback(settings)
    target = make_connection(s3_server, bucket, tenant, role="target", prefix="out", sse="AES256")
    archive = io.BytesIO(b"PK archive bytes")
    archive.read()  # wherever the caller left it
    written = upload_export(tenant.project, archive, "Acme-yolo-7.zip")
    assert written == [
        {"connection": target.pk, "name": target.name, "key": "out/exports/Acme-yolo-7.zip"}
    ]
    stored = get(s3_server, bucket, "out/exports/Acme-yolo-7.zip")
    assert stored["Body"] == b"PK archive bytes" and stored["ServerSideEncryption"] == "AES256"


def test_an_export_job_copies_its_archive_to_the_target(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    from defectlab.jobs.runner import run_job
    from defectlab.transfer.exports import start_export

    with pytest.raises(Invalid):
        start_export(tenant.project, {"format": "yolo", "to_storage": True}, None)
    allow_loopback(settings)
    make_connection(s3_server, bucket, tenant, role="target", prefix="out")
    job = start_export(tenant.project, {"format": "yolo", "to_storage": True}, None)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    (copy,) = job.result["copies"]
    stored = get(s3_server, bucket, copy["key"])
    assert stored["Body"][:2] == b"PK" and copy["key"].startswith("out/exports/")
