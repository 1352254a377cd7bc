"""A worker killed with SIGKILL in the middle of a pre-annotation job: after a restart the job
finishes, every task has exactly one prediction of the version, and the tasks done before the
kill were not run again. Against both brokers, with real worker processes on the real test
database (transaction=True: the worker must see what the test commits).

The worker also runs the version's check (the sandbox) first, as it would in production."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count

from defectlab.inference import mapping, preannotation, registry
from defectlab.inference.demo import model_bytes
from defectlab.inference.models import ModelVersion, VersionState
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import services
from defectlab.labeling.models import Prediction
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import Role
from tests.conftest import Tenant
from tests.jobs.brokers import BROKERS
from tests.jobs.processes import WorkerProcess, crash_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.parametrize("kind", BROKERS)]

TASKS = 36  # tiled 1600×1200 panels: a quarter of a second each on this machine's two cores


@pytest.fixture
def worker(kind: str, tmp_path: Path, settings: Any) -> Iterator[WorkerProcess]:
    with crash_worker(kind, tmp_path, settings) as process:
        yield process


def test_a_preannotation_survives_a_killed_worker(tenant: Tenant, worker: WorkerProcess) -> None:
    manager = tenant.user(Role.MANAGER)
    project = services.create_project(
        tenant.organization,
        manager,
        name="Line 3",
        shape_types=["box", "polygon"],
        labels=[{"name": "scratch"}, {"name": "dent"}, {"name": "stain"}],
    )
    panels = defect_images(TASKS, seed=700_000, width=1600, height=1200)
    services.create_uploaded_tasks(project, [checked_image(n, d) for n, d, _ in panels])
    model = registry.create_model(tenant.organization, manager, name="Demo detector")
    registry.upload_version(model, manager, model_bytes(), file_name="demo.onnx")  # autocommit
    worker.start()
    wait_until(
        lambda: ModelVersion.objects.get(model=model).state == VersionState.READY,
        120,
        "the version's check",
        worker,
    )
    mapping.save_project_model(project, model, manager, tile=True)
    job = preannotation.start_preannotation(project, manager, model=model, version=1)
    wait_until(lambda: Job.objects.get(pk=job.pk).done >= TASKS // 3, 120, "a third", worker)
    worker.kill()
    job.refresh_from_db()
    assert job.done < TASKS, "the kill came too late to test anything"
    # Whole parts only: every task counted done has its prediction, and no other has one.
    done_before = job.done
    assert Prediction.objects.filter(task__project=project).count() == done_before
    first_rows = dict(
        Prediction.objects.filter(task__project=project).values_list("task_id", "created_at")
    )

    worker.start()
    wait_until(
        lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, 180, "the job", worker
    )
    job.refresh_from_db()
    assert job.attempts >= 2  # it really was run again
    assert (job.done, job.total, job.failed) == (TASKS, TASKS, 0)
    assert job.result["tasks"] == TASKS and job.result["predictions"] == TASKS
    per_task = Prediction.objects.filter(task__project=project).values("task_id")
    counts = per_task.annotate(n=Count("id")).values_list("n", flat=True)
    assert len(counts) == TASKS and set(counts) == {1}
    # The tasks done before the kill were not run again (their rows are untouched).
    after = dict(
        Prediction.objects.filter(task__project=project).values_list("task_id", "created_at")
    )
    assert all(after[task] == created for task, created in first_rows.items())
