"""`defectlab demo`'s detector: the committed model becomes a checked, ready version of the demo
organization (alias production), and the demo's proposals are its detections, in the demo's
labels and language; new tasks are pre-annotated on import; asking again changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.inference import mapping
from defectlab.inference.demodetector import ALIAS, equip_demo
from defectlab.inference.models import DetectionModel, VersionState
from defectlab.ingest.uploads import checked_image
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import services
from defectlab.labeling.demo import create_demo
from defectlab.labeling.models import Prediction
from defectlab.synthetic import defect_images
from defectlab.tenancy.models import User

pytestmark = pytest.mark.django_db


def test_the_demo_proposals_come_from_the_demo_detector(
    settings: Any, queued: list[int], drain: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.LANGUAGE_CODE = "zh-hans"
    owner = User.objects.create_user("admin@plant.test", "a-long-password-1")
    project = create_demo("admin@plant.test", images=6)
    with django_capture_on_commit_callbacks(execute=True):
        model = equip_demo(project, owner)
    assert model.name == "缺陷检测器（演示）"
    version = model.versions.get()
    assert version.state == VersionState.READY
    assert model.aliases.get().name == ALIAS
    rows = list(Prediction.objects.filter(task__project=project))
    assert len(rows) == 6 and {row.source for row in rows} == {f"version:{version.pk}"}
    labels = {label.pk: label for label in project.labels.all()}
    shapes = [shape for row in rows for shape in row.shapes]
    assert shapes, "the demo detector finds the panels' defects"
    for shape in shapes:
        label = labels[shape["label"]]
        assert label.name in {"划痕", "凹坑", "污渍"}
        assert shape["attributes"] == {"严重程度": "轻微"}
    jobs = Job.objects.filter(organization=project.organization)
    assert {job.state for job in jobs} == {JobState.SUCCEEDED}
    # Their queue messages, delivered to a worker later, change nothing.
    drain()
    assert Prediction.objects.filter(task__project=project).count() == 6
    # Asked again: the same model, no new version or job.
    count = jobs.count()
    assert equip_demo(project, owner).pk == model.pk
    assert (model.versions.count(), jobs.count()) == (1, count)
    assert DetectionModel.objects.filter(organization=project.organization).count() == 1
    # A new panel is pre-annotated on import.
    name, data, _ = next(defect_images(1, seed=800_000))
    with django_capture_on_commit_callbacks(execute=True):
        (task,) = services.create_uploaded_tasks(project, [checked_image(name, data)])
    drain()
    assert Prediction.objects.filter(task=task, source=f"version:{version.pk}").count() == 1
    assert mapping.project_model(project, model).on_import == ALIAS
