"""Importing tasks from URLs: the job downloads every address through the guarded fetcher, keeps a
result per URL, fails addresses one by one (never the whole import), and a retry retries only the
failures. Images kept by reference are fetched on view through the same fetcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import run_job
from defectlab.labeling import services
from defectlab.labeling.models import Task
from defectlab.media import services as media_services
from defectlab.tenancy.models import Role
from defectlab.transfer.api import jobs as transfer_jobs_api
from defectlab.transfer.models import UrlImportItem
from defectlab.transfer.urlimport import urls_from_file
from tests.conftest import Tenant, client_for, png_bytes
from tests.ingest.conftest import PNG, LoopbackServer, send

pytestmark = pytest.mark.django_db


def start(tenant: Tenant, body: Any, **extra: Any) -> Any:
    return client_for(tenant.user(Role.MANAGER)).post(
        f"/api/projects/{tenant.project.pk}/import-urls/", body, **extra
    )


def items(tenant: Tenant, job_id: int, **params: Any) -> list[dict[str, Any]]:
    response = client_for(tenant.user(Role.MANAGER)).get(f"/api/jobs/{job_id}/items/", params)
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def test_each_url_gets_its_own_result_and_a_retry_retries_only_failures(
    tenant: Tenant, serve: Callable[..., LoopbackServer], connections: list[Any], settings: Any
) -> None:
    server = serve({"/good.png": send(PNG), "/notes.txt": send(b"hello", "text/plain")})
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the operator opens loopback
    urls = [
        server.url("/good.png"),
        "http://10.1.2.3/private.png",  # refused by the policy, nothing is connected
        server.url("/notes.txt"),  # not an image
        server.url("/later.png"),  # 404 for now
    ]
    before = Task.objects.filter(project=tenant.project).count()
    response = start(tenant, {"urls": urls}, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["total"] == 4

    run_job(job_id)

    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"imported": 1, "failed": 3}
    assert (job.done, job.failed) == (4, 3)
    rows = items(tenant, job_id)
    assert [(row["state"], row["rule"]) for row in rows] == [
        ("done", ""),
        ("failed", "private"),
        ("failed", "content_type"),
        ("failed", "http_status"),
    ]
    assert "10.1.2.3" in rows[1]["error"] and "private" in rows[1]["error"]
    assert [row["url"] for row in items(tenant, job_id, state="failed")] == urls[1:]
    assert all(host == "127.0.0.1" for host, _port in connections)
    task = Task.objects.get(pk=rows[0]["task"])
    assert (task.file_name, task.width, task.height) == ("good.png", 32, 24)

    # The missing image appears; a retry fetches only what failed.
    server.routes["/later.png"] = send(png_bytes(20, 10))
    assert (
        client_for(tenant.user(Role.MANAGER)).post(f"/api/jobs/{job_id}/retry/").status_code == 200
    )
    run_job(job_id)
    job.refresh_from_db()
    assert job.result == {"imported": 2, "failed": 2}
    assert [seen.path for seen in server.seen].count("/good.png") == 1
    assert Task.objects.filter(project=tenant.project).count() == before + 2


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.txt", b"# panels from line 3\nhttp://a.test/1.png\n\nhttp://a.test/2.png\n"),
        ("list.csv", b"id,url\n1,http://a.test/1.png\n2,http://a.test/2.png\n"),
        ("list.json", b'["http://a.test/1.png", {"url": "http://a.test/2.png"}]'),
    ],
)
def test_lists_come_as_text_csv_or_json_files(tenant: Tenant, name: str, content: bytes) -> None:
    assert urls_from_file(name, content) == ["http://a.test/1.png", "http://a.test/2.png"]
    response = start(tenant, {"file": SimpleUploadedFile(name, content)}, format="multipart")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert list(UrlImportItem.objects.filter(job=job).values_list("url", flat=True)) == [
        "http://a.test/1.png",
        "http://a.test/2.png",
    ]


def test_the_items_of_a_large_import_are_walked_page_by_page_by_cursor(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like every list that pages: ``{"results", "next_cursor"}``, and ``cursor=`` for the next."""
    monkeypatch.setattr(transfer_jobs_api, "ITEMS_PAGE", 2)
    urls = [f"http://a.test/{number}.png" for number in range(5)]
    job_id = start(tenant, {"urls": urls}, format="json").json()["id"]
    client = client_for(tenant.user(Role.MANAGER))
    seen: list[str] = []
    params: dict[str, Any] = {}
    for _page in range(3):
        body = client.get(f"/api/jobs/{job_id}/items/", params).json()
        seen += [item["url"] for item in body["results"]]
        params = {"cursor": body["next_cursor"]}
    assert seen == urls and body["next_cursor"] is None
    assert client.get(f"/api/jobs/{job_id}/items/", {"cursor": "nonsense"}).status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"urls": []}, "The list holds no addresses."),
        ({"urls": ["http://a.test/1.png", "file:///etc/passwd"]}, "Line 2:"),
        ({"urls": ["http://a.test/1.png", 7]}, "Entry 2:"),
        ({"urls": "http://a.test/1.png"}, "Send a JSON list of image addresses."),
    ],
)
def test_a_list_that_cannot_be_imported_is_refused_whole(
    tenant: Tenant, body: Any, message: str
) -> None:
    response = start(tenant, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)
    assert not Job.objects.exists() and not UrlImportItem.objects.exists()


def test_a_malformed_json_file_names_the_line(tenant: Tenant) -> None:
    bad = SimpleUploadedFile("list.json", b'[\n"http://a.test/1.png",\n]')
    response = start(tenant, {"file": bad}, format="multipart")
    assert response.status_code == 400
    assert "line 3" in response.json()["error"]["message"]


def test_an_annotator_cannot_start_an_import(tenant: Tenant) -> None:
    response = client_for(tenant.user(Role.ANNOTATOR)).post(
        f"/api/projects/{tenant.project.pk}/import-urls/",
        {"urls": ["http://a.test/1.png"]},
        format="json",
    )
    assert response.status_code == 403


def test_a_reference_is_fetched_on_view_through_the_guarded_fetcher(
    tenant: Tenant, serve: Callable[..., LoopbackServer], settings: Any
) -> None:
    server = serve({"/part_7.png": send(PNG)})
    services.import_references(tenant.project, [server.url("/part_7.png")])
    task = Task.objects.get(project=tenant.project, file_name="part_7.png")
    image_url = media_services.signed_url(task.pk, "image")
    anyone = client_for(None)

    refused = anyone.get(image_url)
    assert refused.status_code == 403
    assert refused.json()["error"]["details"]["rule"] == "loopback"
    assert server.seen == []  # refused before connecting

    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the operator opens loopback
    shown = anyone.get(image_url)
    assert shown.status_code == 200 and shown.content == PNG
    thumb_url = media_services.signed_url(task.pk, "thumb")
    assert anyone.get(thumb_url)["Content-Type"] == "image/jpeg"
    anyone.get(thumb_url)
    assert [seen.path for seen in server.seen] == ["/part_7.png", "/part_7.png"]  # thumb cached


def test_deleting_a_reference_task_removes_its_cached_thumbnail(
    tenant: Tenant, serve: Callable[..., LoopbackServer], storage_dir: Any,
    django_capture_on_commit_callbacks: Any, settings: Any,
) -> None:  # fmt: skip
    server = serve({"/p.png": send(PNG)})
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]  # the operator opens loopback
    services.import_references(tenant.project, [server.url("/p.png")])
    task = Task.objects.get(project=tenant.project, file_name="p.png")
    client_for(None).get(media_services.signed_url(task.pk, "thumb"))
    cached = storage_dir / media_services.reference_thumbnails(task.pk)[0]
    assert cached.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_tasks(tenant.project, [task.pk])
    assert not cached.exists()
