"""A worker killed with SIGKILL in the middle of a job: after a restart the job finishes, its
result is complete, and nothing is duplicated. Run against both brokers, with real worker
processes on the real test database (which is why these tests commit: transaction=True)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from defectlab.jobs.models import Job, JobState
from defectlab.labeling.models import Project, Task
from defectlab.tenancy.models import Role
from defectlab.transfer.models import ImportState, UrlImportItem
from defectlab.transfer.urlimport import start_url_import
from tests.conftest import Tenant
from tests.jobs.brokers import BROKERS
from tests.jobs.processes import WorkerProcess, crash_worker, wait_until
from tests.loopback import Loopback

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.parametrize("kind", BROKERS)]

IMAGES = 30


def png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (index * 8 % 256, 90, 200 - index)).save(buffer, "PNG")
    return buffer.getvalue()


class SlowImages(BaseHTTPRequestHandler):
    """/panel-<n>.png after a pause: slow enough that a kill lands in the middle of the import."""

    def do_GET(self) -> None:
        time.sleep(0.12)
        index = int(self.path.strip("/").removeprefix("panel-").removesuffix(".png"))
        body = png(index)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The worker may be killed mid-download: that is the point of the test.
        with contextlib.suppress(BrokenPipeError):
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    server = Loopback(SlowImages)
    yield f"http://127.0.0.1:{server.port}"
    server.close()


@pytest.fixture
def worker(kind: str, tmp_path: Path, settings: Any) -> Iterator[WorkerProcess]:
    with crash_worker(kind, tmp_path, settings) as process:
        yield process


def test_a_url_import_survives_a_killed_worker(
    tenant: Tenant, image_server: str, worker: WorkerProcess, settings: Any
) -> None:
    owner = tenant.user(Role.OWNER)
    # The image server is on loopback, which only the operator's setting opens (here and in the
    # worker process).
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    worker.env["DEFECTLAB_FETCH_ALLOWLIST"] = "127.0.0.1/32"
    before = Task.objects.filter(project=tenant.project).count()
    new_before = Project.objects.get(pk=tenant.project.pk).count_new
    urls = [f"{image_server}/panel-{index}.png" for index in range(IMAGES)]
    job = start_url_import(tenant.project, urls, owner)

    worker.start()
    done = UrlImportItem.objects.filter(job=job, state=ImportState.DONE)
    wait_until(lambda: done.count() >= 8, 60, "a quarter of the import", worker)
    worker.kill()
    assert done.count() < IMAGES, "the kill came too late to test anything"

    worker.start()
    wait_until(
        lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, 90, "the job", worker
    )
    job.refresh_from_db()
    assert job.result == {"imported": IMAGES, "failed": 0}
    assert (job.done, job.failed, job.total) == (IMAGES, 0, IMAGES)
    assert job.attempts >= 2  # it really was run again
    items = list(UrlImportItem.objects.filter(job=job).order_by("index"))
    assert [item.state for item in items] == [ImportState.DONE] * IMAGES
    task_ids = [item.task_id for item in items]
    assert len(set(task_ids)) == IMAGES
    # Exactly one task per URL, nothing twice, and each task's image is the one served.
    assert Task.objects.filter(project=tenant.project).count() == before + IMAGES
    tasks = {task.pk: task for task in Task.objects.filter(pk__in=task_ids)}
    for index, item in enumerate(items):
        task = tasks[item.task_id]
        assert task.file_name == f"panel-{index}.png"
        assert (
            Path(worker.env["DEFECTLAB_DATA_DIR"]) / "storage" / task.image
        ).read_bytes() == png(index)
    assert Project.objects.get(pk=tenant.project.pk).count_new == new_before + IMAGES
