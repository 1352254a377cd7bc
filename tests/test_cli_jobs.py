"""Long commands run their job in the process and show a progress bar."""

from __future__ import annotations

import socket
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from defectlab.cli import main
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import services
from defectlab.labeling.models import Task
from defectlab.tenancy.models import Role
from tests.conftest import Tenant, annotate

# The job runs in a thread with its own database connection: the test's data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), prog_name="defectlab")
    return result.exit_code, result.output


def test_export_writes_the_zip_with_a_progress_bar(tenant: Tenant, tmp_path: Path) -> None:
    annotate(tenant, tenant.tasks[0])
    out = tmp_path / "dataset.zip"
    code, output = run(
        "export", str(tenant.project.pk), "--format", "yolo", "--out", str(out),
        "--as", tenant.user(Role.OWNER).email,
    )  # fmt: skip
    assert code == 0, output
    # Only the labeled task by default; the two nobody labeled when asked for.
    assert "Exporting" in output and f"Wrote {out} (1 images)." in output
    names = zipfile.ZipFile(out).namelist()
    assert len([n for n in names if n.startswith("images/")]) == 1
    assert Job.objects.get(kind="export").started_by == tenant.user(Role.OWNER)
    code, output = run(
        "export", str(tenant.project.pk), "--format", "yolo", "--out", str(out),
        "--include-unlabeled",
    )  # fmt: skip
    assert code == 0, output
    names = zipfile.ZipFile(out).namelist()
    assert len([n for n in names if n.startswith("images/")]) == 3
    assert Job.objects.filter(kind="export").latest("id").params["include_unlabeled"] is True


def test_export_names_the_images_it_left_out(tenant: Tenant, tmp_path: Path, settings: Any) -> None:
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    settings.JOB_MAX_ATTEMPTS = 1
    with socket.socket() as probe:  # a port nobody listens on: the image's host is down
        probe.bind(("127.0.0.1", 0))
        down = probe.getsockname()[1]
    services.import_references(tenant.project, [{"image": f"http://127.0.0.1:{down}/gone.png"}])
    gone = Task.objects.filter(project=tenant.project).latest("id")
    out = tmp_path / "dataset.zip"
    code, output = run(
        "export", str(tenant.project.pk), "--format", "yolo", "--out", str(out),
        "--include-unlabeled",
    )  # fmt: skip
    assert code == 0, output
    assert f"Left out task {gone.pk} (gone.png): " in output
    assert f"Wrote {out} (3 images)." in output


def test_a_bad_export_option_is_a_clear_error(tenant: Tenant) -> None:
    code, output = run("export", str(tenant.project.pk), "--format", "tiff")
    assert code == 1 and "Choose an export format" in output
    assert not Job.objects.exists()


def test_import_urls_reports_its_failures(tenant: Tenant, tmp_path: Path) -> None:
    listing = tmp_path / "cameras.txt"
    listing.write_text("http://10.0.0.5/a.png\nhttp://192.168.1.9/b.png\n")
    code, output = run("import-urls", str(tenant.project.pk), str(listing))
    assert code == 0, output
    assert "Imported 0, failed 2." in output
    assert "line 2:" in output and "192.168.1.9" in output
    assert Job.objects.get().state == JobState.SUCCEEDED


def test_an_unknown_project_is_named(db: None) -> None:
    code, output = run("export", "999999")
    assert code == 1 and "There is no project 999999." in output
