"""A project of synthetic panels whose tasks are approved with the defects they were drawn
with, the demo detector, and running an evaluation as a worker would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from defectlab.geometry import Shape
from defectlab.inference.models import DetectionModel
from defectlab.insight import evaluations
from defectlab.insight.models import Evaluation
from defectlab.labeling.models import Project, Task, TaskStatus
from defectlab.labeling.tasks import NewAnnotation, add_annotations
from defectlab.synthetic import defect_images
from tests.inference.test_preannotation import PANELS, SEED, demo_model, manager, panels

__all__ = [
    "PANELS",
    "approve",
    "approved_panels",
    "demo_model",
    "evaluate_now",
    "manager",
    "panels",
]


def approve(project: Project, *, skip: int | None = None) -> dict[int, list[dict[str, Any]]]:
    """Approve the project's panels with the defects drawn on them as ground truth (task
    ``skip`` keeps its first defect out: a missing defect the model should find)."""
    labels = {label.name.casefold(): label.pk for label in project.labels.all()}
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    drawn = [defects for _name, _data, defects in defect_images(len(tasks), seed=SEED)]
    shapes: dict[int, list[dict[str, Any]]] = {}
    for index, (task, defects) in enumerate(zip(tasks, drawn, strict=True)):
        rows = [
            Shape.box(*defect.box, label=labels[defect.kind], id=f"s{task.pk}-{number}").to_dict()
            for number, defect in enumerate(defects)
        ]
        shapes[task.pk] = rows[1:] if index == skip else rows
    add_annotations(
        [NewAnnotation(task, shapes[task.pk]) for task in tasks], author_id=project.created_by_id
    )
    Task.objects.filter(project=project).update(status=TaskStatus.APPROVED, has_annotation=True)
    return shapes


@pytest.fixture
def approved_panels(panels: Project) -> Project:
    approve(panels, skip=0)
    return panels


def evaluate_now(
    project: Project,
    user: Any,
    model: DetectionModel,
    drain: Callable[..., Any],
    capture: Any,
    **options: Any,
) -> Evaluation:
    if "version" not in options:
        options.setdefault("alias", "production")
    with capture(execute=True):
        evaluation = evaluations.start_evaluation(project, user, model=model, **options)
    drain()
    evaluation.refresh_from_db()
    return evaluation
