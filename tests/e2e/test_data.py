"""Data in and out in the browser: upload, export with a live job page and a download, and a URL
import whose refused addresses are listed with the rule. A real worker runs the jobs (a thread
with our embedded broker, as `defectlab serve` runs one beside the web server)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from defectlab.labeling.models import Task
from defectlab.tenancy.models import Role
from tests.conftest import annotate, png_bytes
from tests.e2e.pages import log_in, tenant_with_images


def test_upload_then_export_and_download(page: Any, worker: None) -> None:
    tenant = tenant_with_images("Acme", tasks=2)
    annotate(tenant, tenant.tasks[0])
    log_in(page, tenant.user(Role.OWNER).email)
    page.goto(f"/projects/{tenant.project.pk}/")
    page.click("#project-data")

    page.set_input_files(
        "#upload input[type=file]",
        files=[{"name": "panel.png", "mimeType": "image/png", "buffer": png_bytes(80, 60)}],
    )
    page.click("#upload button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("1 image was added.")
    assert Task.objects.filter(project=tenant.project).count() == 3

    page.goto(f"/projects/{tenant.project.pk}/data/")
    page.select_option("#export select[name=format]", "coco")
    # One task is labeled; the form says so, and the two others go in only when asked for.
    expect(page.locator("#export-tasks")).to_contain_text("Labeled: submitted or approved (1 task)")
    page.check("#export input[name=tasks][value=all]")
    page.click("#export button[type=submit]")
    page.wait_for_url("**/jobs/*/")
    # The page follows the job by itself until it is done.
    expect(page.locator("#job-state")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator(".progress")).to_have_attribute("aria-valuenow", "100.0")
    with page.expect_download() as download:
        page.click("#job-download")
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    images = [name for name in archive.namelist() if name.startswith("images/")]
    assert len(images) == 3 and "annotations/instances_default.json" in archive.namelist()


def test_a_url_import_lists_refused_addresses_with_the_rule(page: Any, worker: None) -> None:
    tenant = tenant_with_images("Acme", tasks=1)
    log_in(page, tenant.user(Role.OWNER).email)
    page.goto(f"/projects/{tenant.project.pk}/data/")
    page.fill(
        "#import-urls textarea", "http://169.254.169.254/latest/meta-data\nhttp://10.0.0.5/a.png"
    )
    page.click("#import-urls button[type=submit]")
    page.wait_for_url("**/jobs/*/")
    expect(page.locator("#job-state")).to_have_text("Succeeded", timeout=30_000)
    failures = page.locator("table.failures tbody tr")
    expect(failures).to_have_count(2)
    expect(failures.nth(0)).to_contain_text("link_local")
    expect(failures.nth(1)).to_contain_text("private")
    expect(page.locator("#job-detail form button")).to_have_text("Retry the failures")
