"""A worker killed with SIGKILL in the middle of an export: after a restart the job finishes, the
archive in storage is complete, it is the only file the job wrote, and the killed run's partial
file is gone again. Run against both brokers, with real worker processes on the real test
database (which is why these tests commit: transaction=True).

What a killed export leaves behind: on local storage, the partial archive it was writing
(`org/<id>/exports/.job-<id>.zip.<random>.partial`) and nothing else — the zip's own spooled
annotation text lives in anonymous temporary files, which the system reclaims with the process.
The next export of the organization finds the partial unlocked (its writer is dead) and deletes
it, so leftovers never pile up; the rerun writes a new archive and renames it over the job's key.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
from PIL import Image

from defectlab.geometry import Shape
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import services, workflow
from defectlab.media.storage import default_storage
from defectlab.tenancy.models import Role
from defectlab.transfer.exports import export_key, start_export
from tests.conftest import Tenant
from tests.jobs.brokers import BROKERS
from tests.jobs.processes import WorkerProcess, crash_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.parametrize("kind", BROKERS)]

TASKS = 30


def noisy_bmp() -> bytes:
    """640×400 of sixteen-level noise as BMP: the export deflates BMP members (only already
    compressed formats are stored as they are), and this content deflates slowly, so each image
    is real work (~0.15 s) and the export takes a few seconds."""
    pixels = np.random.default_rng(0).integers(0, 16, (400, 640, 3), dtype=np.uint8) * 16
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "BMP")
    return buffer.getvalue()


@pytest.fixture
def worker(kind: str, tmp_path: Path, settings: Any) -> Iterator[WorkerProcess]:
    with crash_worker(kind, tmp_path, settings) as process:
        yield process


def files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def test_an_export_survives_a_killed_worker(
    tenant: Tenant, worker: WorkerProcess, tmp_path: Path
) -> None:
    owner = tenant.user(Role.OWNER)
    # A project of its own: its images must be in the storage the worker process reads.
    project = services.create_project(
        tenant.organization, owner, name="Line 3", labels=[{"name": "scratch"}, {"name": "dent"}]
    )
    image = checked_image("panel.bmp", noisy_bmp())
    tasks = services.create_uploaded_tasks(
        project, [dataclasses.replace(image, name=f"panel-{n:02d}.bmp") for n in range(TASKS)]
    )
    dent = project.labels.get(name="dent")
    annotated = {task.file_name for task in tasks[::2]}
    for task in tasks[::2]:
        workflow.save_annotation(
            task,
            owner,
            base_version=None,
            shapes=[Shape.box(10, 20, 110, 220, label=dent.pk).to_dict()],
            submit=True,
        )
    data_dir = Path(worker.env["DEFECTLAB_DATA_DIR"])
    temporary = Path(worker.env["TMPDIR"])
    before = files_under(data_dir)
    # Unlabeled tasks too: their empty label files are part of what is checked below.
    job = start_export(project, {"format": "yolo", "include_unlabeled": True}, owner)  # autocommit
    key = export_key(job)
    exports = PurePosixPath("storage", key).parent.as_posix()  # relative to the data directory

    worker.start()
    wait_until(
        lambda: Job.objects.get(pk=job.pk).done >= TASKS // 3, 60, "a third of the export", worker
    )
    worker.kill()
    job.refresh_from_db()
    assert job.done < TASKS, "the kill came too late to test anything"
    # The killed run left exactly its partial archive: no finished file, no temporary files.
    (left,) = files_under(data_dir) - before
    assert left.startswith(f"{exports}/.job-{job.pk}.zip.") and left.endswith(".partial")
    assert files_under(temporary) == set()

    worker.start()
    wait_until(
        lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, 120, "the job", worker
    )
    job.refresh_from_db()
    assert job.attempts >= 2  # it really was run again
    assert (job.done, job.total) == (TASKS, TASKS)
    assert (job.result["items"], job.result["images"]) == (TASKS, TASKS)
    # Exactly one new file: the job's archive. The partial of the killed run was swept.
    assert files_under(data_dir) - before == {f"storage/{key}"}
    assert files_under(temporary) == set()

    storage = default_storage()
    with storage.open(key) as file, zipfile.ZipFile(file) as archive:
        assert archive.testzip() is None  # every member is whole (CRCs match)
        names = archive.namelist()
        images = sorted(n for n in names if n.startswith("images/"))
        labels = sorted(n for n in names if n.startswith("labels/"))
        assert len(images) == len(labels) == TASKS
        assert [PurePosixPath(n).name for n in images] == sorted(t.file_name for t in tasks)
        assert archive.read(images[0]) == storage.read(tasks[0].image)
        for label_file in labels:
            lines = archive.read(label_file).decode().splitlines()
            name = PurePosixPath(label_file).stem + ".bmp"
            assert len(lines) == (1 if name in annotated else 0)
        assert "data.yaml" in names
