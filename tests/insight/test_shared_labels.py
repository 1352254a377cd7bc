"""An evaluation of a model two of whose classes become one project label: the second class's
box on the same defect is suppressed as the engine's NMS would suppress a second box of one
class, so it is neither a false positive in the report nor a finding."""

from __future__ import annotations

from typing import Any

import pytest

from defectlab.geometry import Shape
from defectlab.inference.models import DetectionModel
from defectlab.insight.models import EvaluationState, Finding
from defectlab.labeling.models import Project, Task, TaskStatus
from defectlab.labeling.tasks import NewAnnotation, add_annotations
from tests.inference.test_shared_labels import DENT, LIGHT, manager, scratches, two_scratches
from tests.insight.helpers import evaluate_now

__all__ = ["manager", "scratches", "two_scratches"]

pytestmark = pytest.mark.django_db


def approve_scratches(project: Project) -> int:
    """Each panel approved with its scratch and its dent, where the model finds them."""
    labels = {label.name: label.pk for label in project.labels.all()}
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    rows = [
        NewAnnotation(
            task,
            [
                Shape.box(*LIGHT, label=labels["scratch"], id=f"s{task.pk}").to_dict(),
                Shape.box(*DENT, label=labels["dent"], id=f"d{task.pk}").to_dict(),
            ],
        )
        for task in tasks
    ]
    add_annotations(rows, author_id=project.created_by_id)
    Task.objects.filter(project=project).update(status=TaskStatus.APPROVED, has_annotation=True)
    return labels["scratch"]


def test_the_second_class_of_a_label_is_no_false_positive(
    scratches: Project, manager: Any, two_scratches: DetectionModel, drain: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    scratch = approve_scratches(scratches)
    capture = django_capture_on_commit_callbacks
    merged = evaluate_now(scratches, manager, two_scratches, drain, capture)
    assert merged.state == EvaluationState.DONE, merged.error
    assert merged.setup["classes"] == [
        ["scratch_light", scratch], ["scratch_deep", scratch], ["dent", merged.setup["labels"][1]]
    ]  # fmt: skip
    row = merged.report["classes"][str(scratch)]
    assert (row["truths"], row["predictions"], row["precision"], row["recall"]) == (2, 2, 1.0, 1.0)
    assert merged.report["map50"] == 1.0
    assert not Finding.objects.filter(evaluation=merged).exists()  # no duplicate, no extra
