"""Syncing a source storage into its project (incremental, paged, resumable), and serving the
synced images: presigned redirects signed for the browser's endpoint, proxy streaming with
Range, thumbnails made once, TIFF rendered, exports reading from the bucket. Everything runs
against the loopback S3 server (`loopback_only`)."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import zipfile
from typing import Any

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from PIL import Image

from defectlab.errors import Invalid
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import JobState
from defectlab.labeling import services, workflow
from defectlab.labeling.counters import label_counts
from defectlab.labeling.models import Task, TaskLabel
from defectlab.labeling.tasks import NewAnnotation, add_annotations
from defectlab.media.models import StorageConnection, SyncedObject
from defectlab.media.references import ImageRef
from defectlab.media.services import signed_url
from defectlab.tenancy.models import Role
from defectlab.transfer.exports import start_export
from defectlab.transfer.sync import start_sync
from tests.conftest import Tenant, box, client_for, jpeg_bytes
from tests.insight.tally import recounted_tally, stored_tally
from tests.media.conftest import admin_client
from tests.media.s3server import LoopbackS3
from tests.media.storages import (
    allow_loopback,
    clear_caches,
    make_connection,
    png,
    put,
    record_sent,
    run,
)
from tests.test_images import damaged_exif_png, dark_16bit, encode, noise_rgb, rotated_jpeg

pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.django_db]

fresh_caches = pytest.fixture(autouse=True)(clear_caches)
sent = pytest.fixture(record_sent)


def synced(tenant: Tenant, storage: StorageConnection) -> list[Task]:
    return list(
        Task.objects.filter(project=tenant.project, image__startswith="storage://").order_by("id")
    )


def sync(tenant: Tenant, storage: StorageConnection, page_size: int = 500) -> dict[str, Any]:
    job = run(start_sync(storage, tenant.user(Role.MANAGER), page_size=page_size).pk)
    assert job.state == JobState.SUCCEEDED, job.error
    return dict(job.result)


# --- syncing ------------------------------------------------------------------------------------


def test_first_sync_creates_a_task_per_image_and_skips_the_rest(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant, prefix="line3")
    put(
        s3_server,
        bucket,
        {
            "line3/cam1/0001.png": png(40, 30),
            "line3/cam1/0002.JPG": jpeg_bytes(64, 48),
            "line3/cam2/0003.png": png(10, 20),
            "line3/notes.txt": b"not an image",
            "line3/empty.jpg": b"",
            "line3/folder/": b"",
            "elsewhere/0004.png": png(5, 5),  # outside the prefix
        },
    )
    tenant.project.refresh_from_db()
    before = tenant.project.task_count
    response = client_for(tenant.user(Role.MANAGER)).post(f"/api/storages/{storage.pk}/sync/")
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "storage_sync"
    job = run(response.json()["id"])
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.result == {
        "listed": 3,
        "new": 3,
        "changed": 0,
        "unchanged": 0,
        "skipped": 2,  # notes.txt and the empty .jpg (the folder marker is no object to us)
        "missing": 0,
    }
    assert (job.done, job.total) == (3, 3)
    tasks = synced(tenant, storage)
    assert [(t.file_name, t.width, t.height) for t in tasks] == [
        ("0001.png", 40, 30),
        ("0002.JPG", 64, 48),
        ("0003.png", 10, 20),
    ]
    assert tasks[0].image == f"storage://{storage.pk}/cam1/0001.png"
    assert ImageRef.parse(tasks[0].image).kind == "storage" and services.is_viewable(tasks[0])
    tenant.project.refresh_from_db()
    assert tenant.project.task_count == before + 3
    assert tenant.project.count_new == before + 3
    storage.refresh_from_db()
    assert storage.last_sync_at is not None and storage.last_sync_job_id == job.pk
    # The tasks come with media URLs like any other.
    listed = client_for(tenant.user(Role.ANNOTATOR)).get(f"/api/tasks/{tasks[0].pk}/").json()
    assert listed["image_url"] and listed["thumbnail_url"]


def test_syncs_are_incremental(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant)
    put(s3_server, bucket, {f"{index}.png": png(8, 8) for index in range(4)})
    assert sync(tenant, storage)["new"] == 4
    rows = list(SyncedObject.objects.order_by("id").values())
    tasks = synced(tenant, storage)

    again = sync(tenant, storage)
    assert (again["new"], again["unchanged"], again["changed"]) == (0, 4, 0)
    assert list(SyncedObject.objects.order_by("id").values("id", "key", "etag", "task_id")) == [
        {key: row[key] for key in ("id", "key", "etag", "task_id")} for row in rows
    ]
    assert synced(tenant, storage) == tasks

    put(s3_server, bucket, {"new-a.png": png(3, 4), "new-b.png": png(5, 6)})
    third = sync(tenant, storage)
    assert (third["new"], third["unchanged"]) == (2, 4)
    assert len(synced(tenant, storage)) == 6
    tenant.project.refresh_from_db()
    assert tenant.project.count_new == len(tenant.tasks) + 6

    # A replaced object keeps its task (and annotations), with the new size; a removed one is
    # counted as missing and its task stays too.
    put(s3_server, bucket, {"0.png": png(30, 20)})
    admin = admin_client(s3_server)
    admin.delete_object(Bucket=bucket, Key="1.png")
    admin.close()
    fourth = sync(tenant, storage)
    assert (fourth["new"], fourth["changed"], fourth["missing"]) == (0, 1, 1)
    changed = Task.objects.get(image=f"storage://{storage.pk}/0.png")
    assert (changed.pk, changed.width, changed.height) == (tasks[0].pk, 30, 20)
    assert len(synced(tenant, storage)) == 6
    assert SyncedObject.objects.get(key="0.png").etag != rows[0]["etag"]


def test_a_large_listing_is_compared_a_page_at_a_time(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant)
    put(s3_server, bucket, {f"batch/{index:04d}.png": png(2, 2) for index in range(300)})
    with CaptureQueriesContext(db) as first:
        result = sync(tenant, storage, page_size=25)
    assert result["new"] == 300
    assert len(synced(tenant, storage)) == 300
    # 12 pages: a handful of statements each (compare, insert tasks, insert rows, the status
    # counter, the statistics tally: the project's row, all tasks', the slices'), never one
    # per object.
    assert len(first.captured_queries) < 12 * 16
    with CaptureQueriesContext(db) as second:
        assert sync(tenant, storage, page_size=25)["unchanged"] == 300
    assert len(second.captured_queries) < 40  # one comparison a page, plus the job's own
    assert SyncedObject.objects.filter(connection=storage).count() == 300


def test_a_second_sync_is_refused_while_one_is_queued(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    storage = make_connection(s3_server, bucket, tenant)
    client = client_for(tenant.user(Role.MANAGER))
    assert client.post(f"/api/storages/{storage.pk}/sync/").status_code == 202
    again = client.post(f"/api/storages/{storage.pk}/sync/")
    assert again.status_code == 409 and again.json()["error"]["details"]["job"]


def test_a_sync_the_policy_refuses_fails_naming_the_rule(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    storage = make_connection(s3_server, bucket, tenant)  # 127.0.0.1 is not allowlisted
    put(s3_server, bucket, {"a.png": png(2, 2)})
    job = run(start_sync(storage, tenant.user(Role.MANAGER)).pk)
    assert job.state == JobState.FAILED and "rule: loopback" in job.error
    assert synced(tenant, storage) == []


def test_a_crashed_sync_resumes_without_twins(
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant)
    put(s3_server, bucket, {f"{index:02d}.png": png(2, 2) for index in range(10)})
    from defectlab.transfer import sync as sync_module

    real = sync_module._create_tasks
    calls: list[int] = []

    def dies_on_the_second_page(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        real(*args)

    monkeypatch.setattr(sync_module, "_create_tasks", dies_on_the_second_page)
    job = start_sync(storage, tenant.user(Role.MANAGER), page_size=4)
    with pytest.raises(Exception, match="worker killed"):
        run(job.pk)
    assert len(synced(tenant, storage)) == 4  # the first page, whole
    monkeypatch.setattr(sync_module, "_create_tasks", real)
    assert run(job.pk).result["new"] == 6
    assert len(synced(tenant, storage)) == 10
    assert SyncedObject.objects.filter(connection=storage).count() == 10


# --- media --------------------------------------------------------------------------------------


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def one_synced(
    settings: Any,
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    key: str,
    data: bytes,
    **changes: Any,
) -> tuple[StorageConnection, Task]:
    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant, **changes)
    put(s3_server, bucket, {key: data})
    sync(tenant, storage)
    [task] = synced(tenant, storage)
    return storage, task


@pytest.mark.parametrize(
    ("request_host", "url_host"),
    [("outside.example", "localhost"), ("vpn.example:8443", "127.0.0.1")],
)
def test_presign_mode_redirects_to_a_link_signed_for_the_browsers_endpoint(
    tenant: Tenant,
    s3_server: LoopbackS3,
    bucket: str,
    settings: Any,
    request_host: str,
    url_host: str,
) -> None:
    settings.ALLOWED_HOSTS = ["outside.example", "vpn.example"]
    data = png(30, 20)
    _storage, task = one_synced(
        settings,
        tenant,
        s3_server,
        bucket,
        "cam/0001.png",
        data,
        public_endpoints={
            "outside.example": s3_server.url("localhost"),
            "vpn.example:8443": s3_server.url("127.0.0.1"),
        },
    )
    response = client_for(None).get(signed_url(task.pk, "image"), HTTP_HOST=request_host)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{s3_server.url(url_host)}/{bucket}/cam/0001.png?")
    assert "X-Amz-Signature=" in location and "private, max-age=" in response["Cache-Control"]
    assert fetch(location) == (200, data)  # a plain HTTP client, through that endpoint


def test_without_its_own_map_a_connection_uses_the_deployments_public_endpoints(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["outside.example"]
    settings.S3_PUBLIC_ENDPOINTS = {"outside.example": s3_server.url("localhost")}
    data = png(20, 10)
    _storage, task = one_synced(settings, tenant, s3_server, bucket, "cam/0002.png", data)
    response = client_for(None).get(signed_url(task.pk, "image"), HTTP_HOST="outside.example")
    assert response["Location"].startswith(f"{s3_server.url('localhost')}/{bucket}/cam/0002.png?")
    assert fetch(response["Location"]) == (200, data)


def test_proxy_mode_streams_with_range(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    data = png(64, 64, (200, 10, 10))
    _storage, task = one_synced(
        settings, tenant, s3_server, bucket, "panel.png", data, media_mode="proxy"
    )
    url = signed_url(task.pk, "image")
    whole = client_for(None).get(url)
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == data
    part = client_for(None).get(url, HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206
    assert b"".join(part.streaming_content) == data[10:20]
    assert part["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert part["Content-Type"] == "image/png"


def test_thumbnails_are_made_once_and_tiffs_are_rendered(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, storage_dir: Any, settings: Any
) -> None:
    tiff = io.BytesIO()
    Image.new("L", (300, 200), 128).save(tiff, "TIFF")
    storage, task = one_synced(settings, tenant, s3_server, bucket, "scan.tif", tiff.getvalue())
    thumb = client_for(None).get(signed_url(task.pk, "thumb"))
    assert (thumb.status_code, thumb["Content-Type"]) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(thumb.content)).size == (256, 171)
    assert (storage_dir / f"cache/storage/{task.pk}.jpg").is_file()
    shown = client_for(None).get(signed_url(task.pk, "image"))  # browsers cannot show TIFF
    assert (shown.status_code, shown["Content-Type"]) == (200, "image/png")
    assert Image.open(io.BytesIO(shown.content)).size == (300, 200)
    # Cached: the thumbnail no longer needs the bucket.
    admin = admin_client(s3_server)
    admin.delete_object(Bucket=bucket, Key="scan.tif")
    admin.close()
    assert client_for(None).get(signed_url(task.pk, "thumb")).status_code == 200
    gone = client_for(None).get(signed_url(task.pk, "image"))
    assert gone.status_code == 404
    # A deleted connection: its tasks stay, their images are gone.
    storage.delete()
    removed = client_for(None).get(signed_url(task.pk, "image"))
    assert removed.status_code == 404
    assert removed.json()["error"]["code"] == "storage_removed"


def test_a_sync_takes_the_images_an_upload_takes_at_the_size_an_upload_gives(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    """A bucket of camera exports: odd EXIF (damaged, rotated), a 16-bit TIFF, and formats
    Pillow reads but DefectLab refuses (WebP, GIF). The sync keeps exactly what an upload keeps,
    with the same upright size; a size the media view learns later agrees too."""
    sixteen = io.BytesIO()
    dark_16bit(30, 20).save(sixteen, "TIFF")
    objects = {
        "damaged.png": damaged_exif_png(40, 20),
        "turned.jpg": rotated_jpeg(6),
        "deep.tif": sixteen.getvalue(),
        "web.webp": encode(noise_rgb(16, 16), "WEBP"),
        "anim.gif": encode(noise_rgb(16, 16), "GIF"),
    }
    uploaded: dict[str, tuple[int, int]] = {}
    for name, data in objects.items():
        try:
            image = checked_image(name, data)
        except Invalid:
            continue
        uploaded[name] = (image.info.width, image.info.height)
    assert set(uploaded) == {"damaged.png", "turned.jpg", "deep.tif"}

    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant)
    put(s3_server, bucket, objects)
    assert sync(tenant, storage)["skipped"] == 2
    tasks = synced(tenant, storage)
    assert {t.file_name: (t.width, t.height) for t in tasks} == uploaded

    # The media view learns a size it did not have, by the same rule.
    damaged = next(t for t in tasks if t.file_name == "damaged.png")
    Task.objects.filter(pk=damaged.pk).update(width=None, height=None)
    assert client_for(None).get(signed_url(damaged.pk, "thumb")).status_code == 200
    damaged.refresh_from_db()
    assert (damaged.width, damaged.height) == uploaded["damaged.png"]


def test_exports_read_synced_images_from_the_bucket(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    data = png(16, 12)
    one_synced(settings, tenant, s3_server, bucket, "cam/part.png", data)
    job = start_export(
        tenant.project, {"format": "yolo", "include_unlabeled": True}, tenant.user(Role.MANAGER)
    )
    finished = run(job.pk)
    assert finished.state == JobState.SUCCEEDED, finished.error
    download = client_for(tenant.user(Role.MANAGER)).get(f"/api/jobs/{job.pk}/download/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    images = [name for name in archive.namelist() if name.endswith("part.png")]
    assert [archive.read(name) for name in images] == [data]


def test_an_export_learns_a_synced_images_size_and_leaves_out_a_removed_one(
    settings: Any, tenant: Tenant, s3_server: LoopbackS3, bucket: str
) -> None:
    storage, task = one_synced(settings, tenant, s3_server, bucket, "cam/part.png", png(40, 30))
    put(s3_server, bucket, {"cam/gone.png": png(40, 30)})
    sync(tenant, storage)
    gone = Task.objects.get(project=tenant.project, file_name="gone.png")
    for each in (task, gone):
        workflow.save_annotation(
            each,
            tenant.user(Role.MANAGER),
            base_version=None,
            shapes=[{"type": "box", "points": [[5, 5], [25, 25]], "label": tenant.label.pk}],
        )
    # The sizes are unknown again, as when the sync's probe and the save both could not reach
    # the bucket.
    Task.objects.filter(pk__in=[task.pk, gone.pk]).update(width=None, height=None)
    admin_client(s3_server).delete_object(Bucket=bucket, Key="cam/gone.png")

    job = start_export(
        tenant.project, {"format": "yolo", "include_unlabeled": True}, tenant.user(Role.MANAGER)
    )
    finished = run(job.pk)

    assert finished.state == JobState.SUCCEEDED, finished.error
    task.refresh_from_db()
    assert (task.width, task.height) == (40, 30)
    [warning] = finished.result["warnings"]
    assert (warning["task"], warning["reason"]) == (gone.pk, "This file is no longer in storage.")
    download = client_for(tenant.user(Role.MANAGER)).get(f"/api/jobs/{job.pk}/download/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert archive.read("labels/train/part.txt").decode().strip() == "0 0.375 0.5 0.5 0.666667"
    assert not [name for name in archive.namelist() if "gone" in name]


def test_an_s3_address_in_a_projects_storage_is_imported_as_its_object_and_shown(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    """``s3://bucket/key`` names an object of the project's storage connection on that bucket
    (whose prefix holds the key): it is imported as that connection's ``storage://`` object, and
    is shown and exported like a synced one — not kept as an address nothing can read."""
    allow_loopback(settings)
    data = png(40, 30, (10, 200, 10))
    put(s3_server, bucket, {"cam/line-1/0001.png": data})
    storage = make_connection(s3_server, bucket, tenant, prefix="cam/", media_mode="proxy")
    assert services.import_references(tenant.project, [f"s3://{bucket}/cam/line-1/0001.png"]) == 1
    task = Task.objects.get(project=tenant.project, file_name="0001.png")
    assert task.image == f"storage://{storage.pk}/line-1/0001.png"
    shown = client_for(None).get(signed_url(task.pk, "image"))
    assert shown.status_code == 200 and b"".join(shown.streaming_content) == data
    assert client_for(None).get(signed_url(task.pk, "thumb")).status_code == 200
    task.refresh_from_db()
    assert (task.width, task.height) == (40, 30)  # learned when the app first decoded it


def test_an_s3_address_outside_the_projects_storages_is_refused_and_nothing_is_imported(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    make_connection(s3_server, bucket, tenant, prefix="cam/")
    before = Task.objects.count()
    for address in (
        "s3://another-bucket/cam/a.jpg",  # no connection on that bucket
        f"s3://{bucket}/elsewhere/a.jpg",  # outside the connection's prefix
    ):
        with pytest.raises(Invalid) as refused:
            services.import_references(tenant.project, ["https://host/ok.jpg", address])
        assert "Row 2" in refused.value.message and "storage connection" in refused.value.message
    assert Task.objects.count() == before


def test_a_replaced_image_of_another_size_recounts_the_size_bins(
    tenant: Tenant, s3_server: LoopbackS3, bucket: str, settings: Any
) -> None:
    allow_loopback(settings)
    storage = make_connection(s3_server, bucket, tenant)
    put(s3_server, bucket, {"a.png": png(100, 100)})
    sync(tenant, storage)
    (task,) = synced(tenant, storage)
    add_annotations(
        [NewAnnotation(task, [box(tenant.label, 0, 0, 10, 10)])],
        author_id=tenant.user(Role.ANNOTATOR).pk,
    )
    put(s3_server, bucket, {"a.png": png(1000, 1000)})
    assert sync(tenant, storage)["changed"] == 1
    task.refresh_from_db()
    assert (task.width, task.height) == (1000, 1000)
    row = TaskLabel.objects.get(task=task)
    expected = label_counts([box(tenant.label, 0, 0, 10, 10)], 1000, 1000)[tenant.label.pk]
    assert [getattr(row, name) for name in expected.fields()] == list(expected.fields().values())
    assert stored_tally(tenant.project.pk) == recounted_tally(tenant.project.pk)
