"""The project's data page (upload, import from URLs, export) and the page of one job."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from defectlab.jobs.models import Job, JobState
from defectlab.jobs.runner import run_job
from defectlab.labeling.models import Task
from defectlab.tenancy.models import Role
from defectlab.transfer.models import ImportState, UrlImportItem
from tests.conftest import Tenant, annotate, png_bytes
from tests.web.test_pages import signed_in


def data_url(tenant: Tenant) -> str:
    return f"/projects/{tenant.project.pk}/data/"


def test_the_page_is_for_managers_and_speaks_both_languages(tenant: Tenant) -> None:
    refused = signed_in(tenant.user(Role.ANNOTATOR)).get(data_url(tenant), follow=True)
    assert "Your role does not allow this." in refused.content.decode()
    english = signed_in(tenant.user(Role.MANAGER)).get(data_url(tenant)).content.decode()
    assert "Upload images" in english and "YOLO detection" in english
    chinese = signed_in(tenant.user(Role.MANAGER), "zh-hans").get(data_url(tenant)).content.decode()
    assert "上传图像" in chinese and "从网址导入" in chinese and "导出" in chinese


def test_uploading_images_and_a_zip_from_the_page(tenant: Tenant) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner/b.png", png_bytes(10, 8))
    before = Task.objects.filter(project=tenant.project).count()
    page = signed_in(tenant.user(Role.MANAGER)).post(
        data_url(tenant),
        {
            "action": "upload",
            "files": [
                SimpleUploadedFile("a.png", png_bytes()),
                SimpleUploadedFile("more.zip", archive.getvalue()),
            ],
        },
        follow=True,
    )
    assert "2 images were added." in page.content.decode()
    assert Task.objects.filter(project=tenant.project).count() == before + 2


def test_a_broken_upload_says_which_file_and_adds_nothing(tenant: Tenant) -> None:
    before = Task.objects.filter(project=tenant.project).count()
    page = signed_in(tenant.user(Role.MANAGER)).post(
        data_url(tenant),
        {
            "action": "upload",
            "files": [
                SimpleUploadedFile("good.png", png_bytes()),
                SimpleUploadedFile("broken.png", png_bytes()[:40]),
            ],
        },
        follow=True,
    )
    assert "broken.png" in page.content.decode()
    assert Task.objects.filter(project=tenant.project).count() == before


def test_importing_urls_starts_a_job_and_its_page_lists_the_failures(
    tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    client = signed_in(tenant.user(Role.MANAGER))
    response = client.post(
        data_url(tenant),
        {
            "action": "import_urls",
            "urls": "http://10.0.0.5/a.png\n# a comment\nhttp://10.0.0.6/b.png",
        },
    )
    job = Job.objects.get(kind="url_import")
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert UrlImportItem.objects.filter(job=job).count() == 2
    running = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in running

    run_job(job.pk)  # both addresses are private: refused by the fetcher, nothing connected
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "hx-trigger" not in page
    assert "Addresses that failed" in page and "http://10.0.0.6/b.png" in page
    assert "private" in page and "Retry the failures" in page
    assert set(UrlImportItem.objects.values_list("state", flat=True)) == {ImportState.FAILED}


def test_importing_by_reference_adds_tasks_at_once(tenant: Tenant) -> None:
    before = Task.objects.filter(project=tenant.project).count()
    signed_in(tenant.user(Role.MANAGER)).post(
        data_url(tenant),
        {
            "action": "import_urls",
            "urls": "https://cdn.test/1.jpg\nhttps://cdn.test/2.jpg",
            "keep": "reference",
        },
    )
    assert Task.objects.filter(project=tenant.project).count() == before + 2
    assert not Job.objects.exists()


def test_an_export_from_the_page_ends_in_a_download(tenant: Tenant) -> None:
    annotate(tenant, tenant.tasks[0])
    client = signed_in(tenant.user(Role.MANAGER))
    response = client.post(
        data_url(tenant),
        {
            "action": "export",
            "format": "yolo",
            "split_train": "0.8",
            "split_val": "0.2",
            "seed": "7",
        },
    )
    job = Job.objects.get(kind="export")
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert job.params["split"] == {"train": 0.8, "val": 0.2} and job.params["seed"] == 7
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f"/api/jobs/{job.pk}/download/" in page
    download = client.get(f"/api/jobs/{job.pk}/download/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "data.yaml" in archive.namelist()


def test_a_bad_export_option_is_explained(tenant: Tenant) -> None:
    page = signed_in(tenant.user(Role.MANAGER)).post(
        data_url(tenant), {"action": "export", "format": "yolo", "seed": "x"}, follow=True
    )
    assert "The seed must be a whole number." in page.content.decode()
    assert not Job.objects.exists()


def test_the_export_form_says_which_tasks_go_in_and_passes_the_choice(tenant: Tenant) -> None:
    # Of the three tasks one is submitted; nobody has labeled the other two.
    annotate(tenant, tenant.tasks[0])
    client = signed_in(tenant.user(Role.MANAGER))
    page = client.get(data_url(tenant)).content.decode()
    assert "Labeled: submitted or approved (1 task)" in page
    assert "Only approved (0 tasks)" in page
    assert "All, unlabeled ones too (3 tasks)" in page
    assert "Without a val split, val = train" in page
    chinese = signed_in(tenant.user(Role.MANAGER), "zh-hans").get(data_url(tenant)).content.decode()
    assert "已标注：已提交或已通过（1 个任务）" in chinese
    for choice, approved, unlabeled in (
        (None, False, False),
        ("labeled", False, False),
        ("approved", True, False),
        ("all", False, True),
    ):
        form = {"action": "export", "format": "yolo"} | ({"tasks": choice} if choice else {})
        client.post(data_url(tenant), form)
        job = Job.objects.filter(kind="export").latest("id")
        assert (job.params["only_approved"], job.params["include_unlabeled"]) == (
            approved,
            unlabeled,
        ), choice
