"""Two model classes that become one project label: a hand-made YOLOv8 model (an ONNX graph of
constant outputs, checked in the real sandbox) finds a light and a deep scratch on the same
spot, and a dent elsewhere. The engine's NMS is per class, so both scratches come out of it;
mapped to the one label "scratch" they are one defect, proposed once (the better box)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

from defectlab.inference import mapping, registry
from defectlab.inference.models import DetectionModel, VersionState
from defectlab.ingest.uploads import checked_image
from defectlab.labeling import services
from defectlab.labeling.models import Project
from tests.conftest import Tenant
from tests.inference.graphs import constant_model, v8_output
from tests.inference.test_preannotation import manager, predictions, run

__all__ = ["DENT", "LIGHT", "manager", "scratches", "two_scratches"]

pytestmark = pytest.mark.django_db

NAMES = "{0: 'scratch_light', 1: 'scratch_deep', 2: 'dent'}"
LIGHT = [280.0, 290.0, 360.0, 350.0]  # the better scratch box, on the 640×640 image
DENT = [80.0, 80.0, 120.0, 120.0]


def two_scratches_model() -> bytes:
    """Light scratch (0.9) and deep scratch (0.8) boxes with IoU 0.85 (above the default
    0.7), and a dent (0.85) elsewhere; the input and the images are 640×640."""
    output = v8_output(
        [[320, 320, 80, 60], [324, 322, 80, 60], [100, 100, 40, 40]],
        [[0.9, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 0.85]],
    )
    return constant_model({"output0": output}, metadata={"names": NAMES, "imgsz": "[640, 640]"})


@pytest.fixture
def scratches(tenant: Tenant, manager: Any) -> Project:
    """Two 640×640 panels; labels scratch, dent and "deep scratch"."""
    project = services.create_project(
        tenant.organization, manager, name="Scratches", shape_types=["box"],
        labels=[{"name": "scratch"}, {"name": "dent"}, {"name": "deep scratch"}],
    )  # fmt: skip
    ok, data = cv2.imencode(".png", np.zeros((640, 640, 3), dtype=np.uint8))
    assert ok
    images = [checked_image(f"panel{n}.png", data.tobytes()) for n in range(2)]
    services.create_uploaded_tasks(project, images)
    return project


@pytest.fixture
def two_scratches(
    tenant: Tenant, manager: Any, scratches: Project, drain: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> DetectionModel:  # fmt: skip
    """The model as version 1 (checked in the sandbox), alias production; the project maps
    both scratch classes to its label "scratch" (the dent goes to "dent" by its name)."""
    model = registry.create_model(tenant.organization, manager, name="Scratches")
    with django_capture_on_commit_callbacks(execute=True):
        registry.upload_version(model, manager, two_scratches_model(), file_name="s.onnx")
    drain()
    assert model.versions.get().state == VersionState.READY
    registry.move_alias(model, manager, "production", 1)
    scratch = scratches.labels.get(name="scratch").pk
    mapping.save_project_model(
        scratches, model, manager, classes={"scratch_light": scratch, "scratch_deep": scratch}
    )
    return model


def proposed(project: Project) -> list[list[tuple[int, list[float]]]]:
    return [
        sorted(
            (shape["label"], [v for point in shape["points"] for v in point])
            for shape in row.shapes
        )
        for row in predictions(project)
    ]


def test_classes_of_one_label_are_proposed_once(
    scratches: Project, manager: Any, two_scratches: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    labels = {label.name: label.pk for label in scratches.labels.all()}
    job = run(scratches, manager, two_scratches, drain, django_capture_on_commit_callbacks)
    assert job.result["shapes"] == 4, job.result
    panel = sorted([(labels["scratch"], LIGHT), (labels["dent"], DENT)])
    assert proposed(scratches) == [panel, panel]  # the deep scratch's box is gone


def test_classes_of_labels_of_their_own_are_untouched(
    scratches: Project, manager: Any, two_scratches: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    labels = {label.name: label.pk for label in scratches.labels.all()}
    mapping.save_project_model(
        scratches, two_scratches, manager,
        classes={"scratch_light": labels["scratch"], "scratch_deep": labels["deep scratch"]},
    )  # fmt: skip
    run(scratches, manager, two_scratches, drain, django_capture_on_commit_callbacks)
    (first, second) = proposed(scratches)
    assert first == second and len(first) == 3
    assert [label for label, _box in first] == sorted(labels.values())
