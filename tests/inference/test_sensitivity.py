"""A model's sensitivity: the organization's own confidence and IoU for a model, saved by
managers (checked, audited, another organization's model is 404), used by every detection that
names no thresholds (`registry.thresholds`: pre-annotation reads it), and the preview job that
runs a version on a project's recent images with almost nothing left out, so the page can
filter its candidates as a detection would."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from defectlab.errors import Forbidden, Invalid, NotFound
from defectlab.inference import preannotation, registry, sensitivity
from defectlab.inference.engine import decode
from defectlab.inference.models import DetectionModel, ModelVersion
from defectlab.jobs.models import Job, JobState
from defectlab.labeling import services
from defectlab.labeling.models import Prediction, Project, Task
from defectlab.media.references import ImageRef
from defectlab.media.storage import default_storage
from defectlab.tenancy.audit import AuditAction
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, client_for, make_tenant
from tests.inference.test_preannotation import PANELS

pytestmark = pytest.mark.django_db


def bare_model(tenant: Tenant, *, conf: float = 0.25, iou: float = 0.7) -> DetectionModel:
    """A model with one version row (never run): for the rules, not for detections."""
    model = DetectionModel.objects.create(organization=tenant.organization, name="Surface")
    ModelVersion.objects.create(
        organization=tenant.organization, model=model, number=1, state="ready",
        file_key="org/x/v1.onnx", sha256="0" * 64, size=1, ir_version=8, opset=17,
        input_height=640, input_width=640, layout="yolov8", conf=conf, iou=iou, max_det=300,
    )  # fmt: skip
    return model


# ---------------------------------------------------------------------------- thresholds


def test_the_models_saved_values_win_over_the_versions_each_on_its_own(tenant: Tenant) -> None:
    model = bare_model(tenant, conf=0.25, iou=0.7)
    owner = tenant.user(Role.OWNER)

    def now() -> tuple[float, float, int]:
        return registry.thresholds(ModelVersion.objects.select_related("model").get(model=model))

    assert now() == (0.25, 0.7, 300)
    registry.set_sensitivity(model, owner, conf=0.6)
    assert now() == (0.6, 0.7, 300)  # the IoU left unset: the version's
    registry.set_sensitivity(model, owner, conf=None, iou=0.45)
    assert now() == (0.25, 0.45, 300)
    registry.set_sensitivity(model, owner, conf=0.05, iou=1.0)
    assert now() == (0.05, 1.0, 300)
    registry.set_sensitivity(model, owner)
    assert now() == (0.25, 0.7, 300)


@pytest.mark.parametrize(
    ("conf", "iou"),
    [(0, None), (1, None), (-0.1, None), (1.5, None), ("much", None), (math.nan, None),
     (None, 0), (None, -1), (None, 1.01), (None, math.inf), (0.5, "x")],
)  # fmt: skip
def test_out_of_range_values_are_refused_and_change_nothing(
    tenant: Tenant, conf: Any, iou: Any
) -> None:
    model = bare_model(tenant)
    owner = tenant.user(Role.OWNER)
    registry.set_sensitivity(model, owner, conf=0.4, iou=0.5)
    before = AuditEvent.objects.count()
    with pytest.raises(Invalid):
        registry.set_sensitivity(model, owner, conf=conf, iou=iou)
    model.refresh_from_db()
    assert (model.conf, model.iou) == (0.4, 0.5)
    assert AuditEvent.objects.count() == before


def test_each_change_is_audited_with_before_and_after(tenant: Tenant) -> None:
    model = bare_model(tenant)
    manager = tenant.user(Role.MANAGER)
    registry.set_sensitivity(model, manager, conf=0.4, iou=0.5)
    registry.set_sensitivity(model, manager, conf="0.3", iou=None)
    events = AuditEvent.objects.filter(action=AuditAction.MODEL_SENSITIVITY_CHANGED).order_by("id")
    assert [(e.data, e.actor, e.target_id) for e in events] == [
        ({"from": {"conf": None, "iou": None}, "to": {"conf": 0.4, "iou": 0.5}}, manager, str(model.pk)),
        ({"from": {"conf": 0.4, "iou": 0.5}, "to": {"conf": 0.3, "iou": None}}, manager, str(model.pk)),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(Role.OWNER, True), (Role.ADMIN, True), (Role.MANAGER, True), (Role.REVIEWER, False),
     (Role.ANNOTATOR, False)],
)  # fmt: skip
def test_managers_save_others_are_refused(tenant: Tenant, role: str, allowed: bool) -> None:
    model = bare_model(tenant)
    if allowed:
        registry.set_sensitivity(model, tenant.user(role), conf=0.5)
    else:
        with pytest.raises(Forbidden):
            registry.set_sensitivity(model, tenant.user(role), conf=0.5)
    model.refresh_from_db()
    assert model.conf == (0.5 if allowed else None)


def test_another_organizations_model_is_404_to_the_service_and_the_api(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    model = bare_model(other_tenant)
    with pytest.raises(NotFound):
        registry.set_sensitivity(model, tenant.user(Role.OWNER), conf=0.5)
    answer = client_for(tenant.user(Role.OWNER)).put(
        f"/api/models/{model.pk}/sensitivity/", {"conf": 0.5}, format="json"
    )
    assert answer.status_code == 404
    model.refresh_from_db()
    assert model.conf is None


def test_the_api_sets_shows_and_clears_the_values(tenant: Tenant) -> None:
    model = bare_model(tenant)
    manager = client_for(tenant.user(Role.MANAGER))
    url = f"/api/models/{model.pk}/sensitivity/"
    answer = manager.put(url, {"conf": 0.35, "iou": 0.6}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["conf"], answer.json()["iou"]) == (0.35, 0.6)
    shown = client_for(tenant.user(Role.ANNOTATOR)).get(f"/api/models/{model.pk}/").json()
    assert (shown["conf"], shown["iou"]) == (0.35, 0.6)
    refused = manager.put(url, {"conf": 1, "iou": 0.6}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_conf"
    assert (
        client_for(tenant.user(Role.REVIEWER)).put(url, {"conf": 0.5}, format="json").status_code
        == 403
    )
    answer = manager.put(url, {"conf": None}, format="json")  # iou left out: cleared too
    assert (answer.json()["conf"], answer.json()["iou"]) == (None, None)


# ---------------------------------------------------------------------------- pre-annotation


def shapes_of(project: Project) -> list[dict[str, Any]]:
    return [s for row in Prediction.objects.filter(task__project=project) for s in row.shapes]


def test_pre_annotation_uses_the_saved_values(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    def run() -> list[dict[str, Any]]:
        with django_capture_on_commit_callbacks(execute=True):
            preannotation.start_preannotation(panels, manager, model=demo_model, version=1)
        drain()
        assert Job.objects.order_by("-id").first().state == JobState.SUCCEEDED  # type: ignore[union-attr]
        return shapes_of(panels)

    version = demo_model.versions.get()
    assert version.conf == 0.25
    plain = run()
    assert any(shape["score"] < 0.6 for shape in plain), "some shapes between 0.25 and 0.6"
    registry.set_sensitivity(demo_model, manager, conf=0.6)
    strict = run()
    assert strict and all(shape["score"] > 0.6 for shape in strict)
    assert len(strict) < len(plain)
    # And the IoU: the detector pre-annotation builds carries the model's values.
    registry.set_sensitivity(demo_model, manager, conf=0.6, iou=0.3)
    detector = preannotation.load_detector(ModelVersion.objects.select_related("model").get())
    assert (detector.conf, detector.iou, detector.max_det) == (0.6, 0.3, version.max_det)


# ---------------------------------------------------------------------------- the preview


def preview(
    model: DetectionModel, user: Any, project: Project, drain: Callable[..., Any], capture: Any,
    **options: Any,
) -> Job:  # fmt: skip
    with capture(execute=True):
        job = sensitivity.start_preview(model, user, project=project, **options)
    drain()
    job.refresh_from_db()
    return job


def test_the_preview_keeps_every_candidate_a_detection_would_choose_from(
    panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    job = preview(demo_model, manager, panels, drain, django_capture_on_commit_callbacks,
                  alias="production")  # fmt: skip
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.kind == "sensitivity_preview" and job.project_id == panels.pk
    result = job.result
    version = demo_model.versions.get()
    assert (result["version"], result["alias"], result["model"]) == (1, "production", demo_model.pk)
    assert result["names"] == ["scratch", "dent", "stain"]
    assert (result["nms"], result["max_det"], result["floor"]) == (True, version.max_det, 0.01)
    tasks = list(Task.objects.filter(project=panels).order_by("-id"))
    assert [image["task"] for image in result["images"]] == [task.pk for task in tasks]
    assert (job.done, job.total, job.failed) == (PANELS, PANELS, 0)
    detector = preannotation.load_detector(version)
    more = 0
    for image, task in zip(result["images"], tasks, strict=True):
        data = default_storage().read(ImageRef.parse(task.image).location)  # type: ignore[union-attr]
        assert (image["width"], image["height"]) == (task.width, task.height)
        boxes = np.asarray(image["boxes"], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(image["scores"], dtype=np.float32)
        classes = np.asarray(image["classes"], dtype=np.int64)
        assert len(boxes) == len(scores) == len(classes) <= sensitivity.CANDIDATES
        assert (scores > np.float32(0.01)).all() and (np.diff(scores) <= 0).all()
        assert ((boxes >= 0) & (boxes[:, [2, 3, 2, 3]] <= [task.width, task.height] * 2)).all()
        # Filtered as the page filters them, the candidates are what a detection keeps.
        found = detector.detect(data)
        above = np.flatnonzero(scores > np.float32(version.conf))
        shifted = boxes[above] + classes[above, None] * decode.MAX_WH
        kept = above[decode.nms(shifted, scores[above], version.iou, version.max_det)]
        assert len(kept) == len(found)
        assert np.allclose(boxes[kept], found.boxes, atol=0.01)
        assert (classes[kept] == found.classes).all()
        more += len(scores) - len(kept)
    assert more > 0, "the preview holds candidates the default thresholds leave out"


def test_starting_a_preview_checks_who_which_project_and_twice(
    tenant: Tenant, panels: Project, manager: Any, demo_model: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    with pytest.raises(Forbidden):
        sensitivity.start_preview(
            demo_model, tenant.user(Role.ANNOTATOR), project=panels, version=1
        )
    other = make_tenant("Other")
    with pytest.raises(NotFound):
        sensitivity.start_preview(demo_model, manager, project=other.project, version=1)
    with pytest.raises(NotFound):
        sensitivity.start_preview(demo_model, manager, project=panels, version=7)
    empty = services.create_project(tenant.organization, manager, name="Empty")
    with pytest.raises(Invalid):
        sensitivity.start_preview(demo_model, manager, project=empty, version=1)
    # Clicked twice while it waits: one job.
    reviewer = tenant.user(Role.REVIEWER)
    first = sensitivity.start_preview(demo_model, reviewer, project=panels, version=1)
    assert sensitivity.start_preview(demo_model, reviewer, project=panels, version=1) == first
    # The tasks asked for, the project's only, in their order.
    ids = [task.pk for task in Task.objects.filter(project=panels).order_by("id")][:2]
    job = preview(demo_model, manager, panels, drain, django_capture_on_commit_callbacks,
                  version=1, tasks=[ids[1], other.tasks[0].pk, ids[0]])  # fmt: skip
    assert job.params["tasks"] == [ids[1], ids[0]]
    assert [image["task"] for image in job.result["images"]] == [ids[1], ids[0]]
